"""``POST /api/push/fronius``: a Fronius site's pusher delivers one reading.

The contract is ``vendor-fixtures/fronius-push/CONTRACT.md``. The document carries its
own credentials (``siteId`` = the system's vendor site id, ``apiKey`` = its credential
``api_key``), so the route takes no bearer token. Answers:

* 200 ``{"success": true, "message", "systemId", "timestamp", "delaySeconds"}`` when stored;
* 400 (``invalid_request``) for a body that does not fit the contract, nothing stored;
* 401 (``unauthorized``) for an unknown site **or** a wrong key: one answer for both, so
  a caller cannot learn which site ids exist (the contract's 404 for an unknown site
  would tell); the key is compared in constant time, also against a dummy when the
  site is unknown;
* 409 ``{"success": false, "error", "timestamp", ...}`` when a reading at that
  timestamp is already stored for the site: nothing changes.

Accepted readings go through the one pipeline (source ``fronius-push``), each linked to
the document kept as a raw event without its ``apiKey``.

Every authenticated push leaves one session row (cause ``PUSH``, as a poll leaves one):
stored (its reading count, the raw event), or refused (409 ``conflict``, 400
``invalid_request`` for a document measuring nothing, ``store`` when writing failed).
An unauthenticated push names no system we may trust: no session.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from wattline import clock, logs
from wattline.api import schemas as S
from wattline.api.deps import ctx
from wattline.domain import timeutil
from wattline.security.crypto import CredentialError, decrypt_credentials
from wattline.security.errors import ApiError
from wattline.sources.vendors.fronius.push import SOURCE, FroniusPush, push_record
from wattline.sources.vendors.normalize import records_to_batch
from wattline.store import push_sites, sessions_repo
from wattline.store.device_telemetry import raw_event_ids
from wattline.store.vendor_plants import VendorPlantInfo

log = logs.get("wattline.api.fronius_push")
router = APIRouter(prefix="/api/push", tags=["push"])

VENDOR = "fronius"
_DUMMY_KEY = b"\x00" * 32  # compared against when the site is unknown (same work either way)
_REFUSED = "unknown site or wrong key"


class PushAccepted(BaseModel):
    success: Literal[True] = True
    message: str = Field(description="what was stored")
    systemId: int = Field(description="the system (asset) the reading was stored for")
    timestamp: str = Field(description="the reading's instant, ISO-8601 UTC")
    delaySeconds: int = Field(description="seconds from the reading's instant to its arrival (>= 0)")
    readings: int = Field(description="readings written (a null field is no reading; 0 is one)")


class PushConflict(BaseModel):
    success: Literal[False] = False
    error: str
    code: str
    details: dict[str, Any] | None
    timestamp: str = Field(description="the timestamp already stored, ISO-8601 UTC")


def site_for_push(request: Request, site_id: str) -> tuple[VendorPlantInfo | None, bytes | None]:
    """The system a ``siteId`` names and its push key (UTF-8), or (None, None).

    The one place that knows where pushing sites live (a vendor plant of type
    ``fronius`` and its vendor account's ``api_key``): swap it when systems land.
    """
    c = ctx(request)
    site = push_sites.push_site(c.dbs.main_reader, VENDOR, site_id)
    if site is None:
        return None, None
    try:
        key = decrypt_credentials(c.settings.encryption_key, site.credentials_encrypted).get("api_key")
    except CredentialError:
        log.warning("fronius_push.credentials_unreadable", system_id=site.plant_id)
        return site, None
    return site, key.encode() if isinstance(key, str) and key else None


def _authenticate(request: Request, push: FroniusPush) -> VendorPlantInfo:
    site, key = site_for_push(request, push.siteId)
    given = push.apiKey.encode()
    ok = hmac.compare_digest(given, key if key is not None else _DUMMY_KEY)
    if site is None or key is None or not ok:
        raise ApiError(401, "unauthorized", _REFUSED, None)
    return site


_site_locks: dict[int, threading.Lock] = {}
_locks_guard = threading.Lock()


def _site_lock(system_id: int) -> threading.Lock:
    """One push per site at a time: the "already stored" check and the write are one step."""
    with _locks_guard:
        return _site_locks.setdefault(system_id, threading.Lock())


@router.post(
    "/fronius",
    response_model=PushAccepted,
    responses={**S.errors(400, 401), 409: {"model": PushConflict, "description": "A reading at this timestamp is already stored"}},
)
async def push_fronius(request: Request, push: FroniusPush) -> Any:
    """Store one reading pushed by a Fronius site (see the module docstring for answers)."""
    body = await request.json()  # the document as it arrived (validated above)
    return await asyncio.to_thread(_store, request, push, body)  # database work off the loop


def _store(request: Request, push: FroniusPush, body: dict) -> Any:
    site = _authenticate(request, push)
    c = ctx(request)
    t0 = clock.now()
    outcome: dict = {"success": False, "code": "store", "error": "storing failed", "readings": 0, "raw": None}
    try:
        answer = _store_site(c, site, push, body, outcome)
        if isinstance(answer, JSONResponse):  # the 409
            outcome.update(code="conflict", error="a reading at this timestamp is already stored")
        return answer
    except ApiError as exc:
        outcome.update(code=exc.code, error=exc.message)
        raise
    finally:
        _record_session(c, site, t0, outcome)


def _record_session(c, site: VendorPlantInfo, t0: float, outcome: dict) -> None:
    """One session per authenticated push; a sessions table that is down never fails the push."""
    session = dict(system_id=site.plant_id, vendor_type=VENDOR, cause="PUSH", started_at_ms=int(t0 * 1000),
                   duration_ms=int(round((clock.now() - t0) * 1000)), success=outcome["success"],
                   vendor_error_code=None if outcome["success"] else outcome["code"],
                   error=None if outcome["success"] else outcome["error"], num_readings=outcome["readings"],
                   raw_event_id=outcome["raw"])
    try:
        sessions_repo.record_push(c.dbs.telemetry, session)
    except Exception as exc:  # noqa: BLE001 - the reading is stored; the session is bookkeeping
        log.error("fronius_push.session_not_written", system_id=site.plant_id, error=str(exc))


def _store_site(c, site: VendorPlantInfo, push: FroniusPush, body: dict, outcome: dict) -> Any:
    record = push_record(push, body)
    stamp = timeutil.iso(record.ts)
    if not record.values:
        raise ApiError(400, "invalid_request", "the document measures nothing (every value is null)",
                       {"timestamp": stamp})
    conflict = PushConflict(error=f"a reading at {stamp} is already stored", code="conflict",
                            details={"systemId": site.plant_id}, timestamp=stamp)
    with _site_lock(site.plant_id):
        if push_sites.stored_at(c.dbs.telemetry, list(site.series.values()), record.ts):
            return JSONResponse(conflict.model_dump(), status_code=409)
        batch = records_to_batch(site.resolver(), site.plant_id, [record], SOURCE)
        result = c.pipeline.ingest(batch)
    if not result.readings_written and not result.quarantined:
        # another API process stored the same push between our check and our write (the
        # lock above is per process): the pipeline's idempotent write added nothing
        return JSONResponse(conflict.model_dump(), status_code=409)
    outcome.update(success=True, readings=result.readings_written,
                   raw=raw_event_ids([record.raw])[0] if result.readings_written else None)
    now = clock.now_s()
    log.info("fronius_push.stored", system_id=site.plant_id, ts=record.ts, readings=result.readings_written,
             sequence=push.sequence[:80])
    quarantined = f", {len(result.quarantined)} quarantined" if result.quarantined else ""
    return PushAccepted(message=f"stored {result.readings_written} readings{quarantined}",
                        systemId=site.plant_id, timestamp=stamp, delaySeconds=max(0, now - record.ts),
                        readings=result.readings_written)

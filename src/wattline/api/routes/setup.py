"""Connection tests and self-service setup of a monitored system (seed 003).

* ``POST /api/test-connection`` ``{vendorType, siteId?, timezone?, credentials}`` (a
  user, role >= user): the credentials are checked by the vendor adapter's model, then
  tried against the vendor (log in; with ``siteId``, the newest values and what the
  vendor says of the site). Answers ``{success, latest: {point key: value},
  systemInfo: {...}, error?}``: a vendor that refuses the credentials or does not
  answer is ``success: false`` with a clear ``error`` (never a 5xx); credentials
  that do not fit the model are a 400 naming the keys. The credentials are never
  stored, never echoed and never logged (a vendor message that would contain one has
  it replaced by ``***``).
* ``POST /api/setup`` ``{vendorType, siteId, displayName, alias?, timezone?,
  credentials, makeDefault?}`` (a signed-in user, role >= user): the same test, and
  when it succeeds a new system owned by the caller with its vendor's default
  points and the credentials stored encrypted (:func:`wattline.system_admin.add_system`).
  A failed test writes nothing (422 ``connection_failed``); the same site or alias
  again is 409.

The vendor is reached at ``settings.vendor_base_url`` (``WATTLINE_VENDOR_BASE_URL``)
when set, else at the emulated clouds on loopback (``wattline vendors serve``,
``http://127.0.0.1:8710``): real vendor clouds are not reachable from where Wattline
is developed and tested.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from wattline import logs, system_admin
from wattline.provisioning import validate_vendor_credentials
from wattline.api import schemas as S
from wattline.api.deps import ctx
from wattline.config import EMULATOR_HOST, EMULATOR_PORT
from wattline.domain.systems import ALIAS_PATTERN
from wattline.domain.timeutil import TimezoneError, zone
from wattline.security.deps import require_role
from wattline.security.errors import ApiError
from wattline.security.principal import Principal
from wattline.sources.vendors.errors import (
    InvalidCredentials, QuotaExhausted, UnknownVendorError, VendorAuthError, VendorError, VendorRateLimited,
    VendorUnavailable,
)
from wattline.sources.vendors.registry import create_adapter, get_adapter_class
from wattline.store import systems_repo
from wattline.store.registry import RegistryError

log = logs.get("wattline.api.setup")
router = APIRouter(tags=["setup"], responses=S.errors(401, 403))
User = Annotated[Principal, Depends(require_role("user"))]
TEST_TIMEOUT_S = 20.0  # the whole test: log in, newest values, site facts
_CALL_TIMEOUT_S = 8.0
_BAD_REQUEST = {422: {"model": S.ErrorBody, "description": "The connection test failed (code connection_failed)"},
                409: {"model": S.ErrorBody, "description": "The caller already has this site or alias"}}


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class TestConnectionIn(_In):
    vendorType: str = Field(min_length=1, max_length=40)
    siteId: str | None = Field(None, min_length=1, max_length=100)
    timezone: str = Field("UTC", min_length=1, max_length=64, description="the site's IANA zone")
    credentials: dict[str, Any] = Field(description="as the vendor's credentials model asks; never stored here")


class TestConnectionOut(BaseModel):
    success: bool
    latest: dict[str, float] = Field(description="newest value per point key (with siteId)")
    systemInfo: dict[str, Any] = Field(description="what the vendor says of the site (name, capacity, zone...)")
    error: str | None = None
    errorCode: str | None = Field(None, description="auth | unavailable | rate_limited | quota | request | timeout")


class SetupIn(_In):
    vendorType: str = Field(min_length=1, max_length=40)
    siteId: str = Field(min_length=1, max_length=100)
    displayName: str = Field(min_length=1, max_length=200)
    alias: str | None = Field(None, min_length=1, max_length=63, pattern=ALIAS_PATTERN)
    timezone: str = Field("UTC", min_length=1, max_length=64)
    makeDefault: bool = False
    credentials: dict[str, Any]


class SetupPointOut(BaseModel):
    key: str
    label: str | None
    unit: str
    subsystem: str | None
    type: str | None


class SetupOut(BaseModel):
    success: bool
    systemId: int
    displayName: str
    alias: str
    owner: str
    vendorType: str
    vendorSiteId: str
    timezone: str
    isDefault: bool
    latest: dict[str, float]
    points: list[SetupPointOut]


def vendor_base_url(settings) -> str:
    """Where vendors are reached: the configured URL, else the emulation on loopback."""
    return settings.vendor_base_url or f"http://{EMULATOR_HOST}:{EMULATOR_PORT}"


def _secrets(credentials: dict[str, Any]) -> list[str]:
    return sorted({str(v) for v in credentials.values() if v is not None and len(str(v)) >= 3}, key=len,
                  reverse=True)


def _scrub(text: str, secrets: list[str]) -> str:
    for s in secrets:
        text = text.replace(s, "***")
    return text


def _check_request(vendor_type: str, timezone: str, credentials: dict[str, Any]) -> str:
    """The vendor type, after the vendor, zone and credentials' shape are checked (400s)."""
    try:
        cls = get_adapter_class(vendor_type)
    except UnknownVendorError as exc:
        raise ApiError(400, "unknown_vendor", str(exc), {"vendorType": vendor_type[:40]}) from None
    try:
        zone(timezone)
    except TimezoneError as exc:
        raise ApiError(400, "invalid_request", str(exc), {"field": "timezone"}) from None
    try:
        validate_vendor_credentials(cls.vendor_type, credentials)
    except InvalidCredentials as exc:  # names the keys, never a value
        raise ApiError(400, "invalid_credentials", _scrub(str(exc), _secrets(credentials)),
                       {"vendorType": cls.vendor_type, "expected": cls.credentials_model.describe()}) from None
    return cls.vendor_type


def _code(exc: BaseException) -> str:
    if isinstance(exc, VendorAuthError):
        return "auth"
    if isinstance(exc, QuotaExhausted):
        return "quota"
    if isinstance(exc, VendorRateLimited):
        return "rate_limited"
    if isinstance(exc, VendorUnavailable):
        return "unavailable"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "request"


async def run_test(settings, vendor_type: str, site_id: str | None, timezone: str,
                   credentials: dict[str, Any]) -> TestConnectionOut:
    """Try the credentials against the vendor; never raises for a vendor's answer."""
    secrets = _secrets(credentials)
    adapter = create_adapter(vendor_type, vendor_base_url(settings), dict(credentials),
                             timeout_s=_CALL_TIMEOUT_S, retry_waits_s=(0.0,))
    latest: dict[str, float] = {}
    info: dict[str, Any] = {"vendorType": vendor_type}
    if site_id is not None:
        info["siteId"] = site_id
    try:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            await adapter.test_connection()
            if site_id is not None:
                got = await adapter.fetch_latest(site_id, timezone)
                if got.records:
                    rec = got.records[-1]
                    latest = {k: float(v) for k, v in sorted(rec.values.items()) if v is not None}
                    info["lastReadingAt"] = int(rec.ts)
                try:
                    plants = await adapter.list_plants()
                except (NotImplementedError, VendorError):
                    plants = []
                for p in plants:
                    if str(p.vendor_plant_id) == str(site_id):
                        info.update({k: v for k, v in (("name", p.name), ("capacityKw", p.capacity_kw),
                                                       ("timezone", p.timezone), ("latitude", p.latitude),
                                                       ("longitude", p.longitude),
                                                       ("startOperatingTs", p.start_operating_ts))
                                     if v is not None})
                        break
    except (VendorError, TimeoutError) as exc:
        code = _code(exc)
        message = {"auth": "the vendor refused the credentials",
                   "unavailable": "the vendor could not be reached or did not answer",
                   "rate_limited": "the vendor asks to wait (rate limit)",
                   "quota": "the account's call quota is used up",
                   "timeout": f"the vendor did not answer within {TEST_TIMEOUT_S:g} s"}.get(code)
        detail = _scrub(str(exc), secrets) if code not in ("timeout",) else ""
        error = f"{message}: {detail}" if message and detail else (message or detail or type(exc).__name__)
        return TestConnectionOut(success=False, latest={}, systemInfo=info, error=error, errorCode=code)
    except Exception as exc:  # noqa: BLE001 - a vendor's odd answer is the test's result, not a 500
        return TestConnectionOut(success=False, latest={}, systemInfo=info, errorCode="request",
                                 error=f"unexpected answer from the vendor ({type(exc).__name__})")
    finally:
        await adapter.aclose()
    return TestConnectionOut(success=True, latest=latest, systemInfo=info)


@router.post("/api/test-connection", responses=S.errors(400))
async def test_connection(request: Request, principal: User, body: TestConnectionIn) -> TestConnectionOut:
    """Test vendor credentials before adding a system (nothing is stored)."""
    vendor = _check_request(body.vendorType, body.timezone, body.credentials)
    out = await run_test(ctx(request).settings, vendor, body.siteId, body.timezone, body.credentials)
    log.info("setup.test_connection", vendor=vendor, by=principal.name, success=out.success,
             error_code=out.errorCode)
    return out


@router.post("/api/setup", responses={**S.errors(400), **_BAD_REQUEST})
async def setup(request: Request, principal: User, body: SetupIn) -> SetupOut:
    """Add a system owned by the caller, once its credentials pass the connection test."""
    if principal.kind != "user":
        raise ApiError(403, "forbidden", "a system is owned by a signed-in user, not by a token")
    vendor = _check_request(body.vendorType, body.timezone, body.credentials)
    c = ctx(request)
    tested = await run_test(c.settings, vendor, body.siteId, body.timezone, body.credentials)
    if not tested.success:
        log.info("setup.refused", vendor=vendor, by=principal.name, error_code=tested.errorCode)
        raise ApiError(422, "connection_failed", tested.error or "the connection test failed",
                       {"errorCode": tested.errorCode})

    def add() -> tuple[dict, list[dict]]:
        with c.dbs.main.begin() as conn:
            sid = system_admin.add_system(conn, c.settings, body.displayName, vendor, body.siteId, principal.name,
                                          timezone=body.timezone, credentials=body.credentials,
                                          base_url=vendor_base_url(c.settings), alias=body.alias,
                                          make_default=body.makeDefault)
            return systems_repo.system(conn, sid), systems_repo.system_points(conn, sid)

    try:
        s, pts = await asyncio.to_thread(add)
    except InvalidCredentials as exc:
        raise ApiError(400, "invalid_credentials", _scrub(str(exc), _secrets(body.credentials))) from None
    except RegistryError as exc:
        text = _scrub(str(exc), _secrets(body.credentials))
        status = 409 if "already" in text else 400
        raise ApiError(status, "conflict" if status == 409 else "invalid_request", text) from None
    log.info("setup.system_added", system_id=s["id"], vendor=vendor, owner=principal.name)
    return SetupOut(success=True, systemId=s["id"], displayName=s["display_name"], alias=s["alias"],
                    owner=s["owner"], vendorType=s["vendor_type"], vendorSiteId=s["vendor_site_id"],
                    timezone=s["timezone"], isDefault=bool(s["is_default"]), latest=tested.latest,
                    points=[SetupPointOut(key=p["key"], label=p["label"], unit=p["unit"], subsystem=p["subsystem"],
                                          type=p["point_type"]) for p in pts])

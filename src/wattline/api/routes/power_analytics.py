"""Seed 002's ``/api/power-analytics``: the HTTP ingest of device telemetry.

``POST /api/power-analytics/telemetry`` takes one seed-002 telemetry document or a
list of them, for devices without MQTT, into the same pipeline as the MQTT consumer.
All documents are validated first: one invalid document is a 400 naming it (its
position in the list) and the field, and nothing is written. Answers 200 when
every document is in the ledger (new or a repeat), 202 when some were kept out of
it (unknown device, quarantined): accepted, with the counts.

``POST /status`` and ``POST /heartbeat`` take a controller's status (``online`` /
``offline``) or heartbeat documents the same way (each naming its ``esp32_name``);
``GET /health`` is seed 004's health report; ``GET /devices`` and
``GET /devices/{esp32_name}/{device_id}`` the devices with their controller's state,
status history and daily energy (the device page reads them).
"""

from __future__ import annotations

import asyncio
import json

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from wattline import provisioning
from wattline.api import schemas as S
from wattline.api import status_schemas as SS
from wattline.jobs import campus_health
from wattline.jobs.controller_status import record_valid
from wattline.jobs.device_telemetry import ingest_payloads
from wattline.security.deps import get_principal, require_role
from wattline.security.errors import ApiError
from wattline.security.principal import Principal
from wattline.security.roles import INGEST, may_ingest
from wattline.sources.devices import TelemetryPayload, parse_documents
from wattline.sources.devices.status import HEARTBEAT, STATUS, HeartbeatPayload, StatusPayload, parse_signals
from wattline.store import device_registry, registry

router = APIRouter(prefix="/api/power-analytics", tags=["power-analytics"])

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_DOCUMENTS = 10_000


def require_ingest(request: Request) -> Principal:
    """Dependency: a token of the ``ingest`` role, or an admin (or superadmin)."""
    principal = get_principal(request)
    if principal is None:
        raise ApiError(401, "unauthorized", "authentication required")
    if principal.kind == "cron" or not may_ingest(principal.role):
        raise ApiError(403, "forbidden", f"requires role {INGEST} or admin", {"required_role": f"{INGEST} or admin"})
    return principal


def _organization(request: Request, principal: Principal) -> int:
    """The caller's organization; without one, the default organization."""
    if principal.organization_id is not None:
        return principal.organization_id
    dbs = request.app.state.ctx.dbs
    with dbs.main_reader.connect() as conn:
        org = device_registry.organization_id(conn, registry.DEFAULT_ORG)
    if org is None:  # a fresh registry: the default organization is created on first use
        with dbs.main.begin() as conn:
            org = provisioning.ensure_organization(conn)
    return org


def _documents(body: bytes) -> tuple[list, bool]:
    """The documents of a body, and whether it was a list."""
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, "payload_too_large", f"the body is larger than {MAX_BODY_BYTES} bytes",
                       {"max_bytes": MAX_BODY_BYTES})
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not JSON: {exc}") from None
    if isinstance(data, dict):
        return [data], False
    if not isinstance(data, list) or not data:
        raise ApiError(400, "invalid_request", "the body must be a telemetry document or a non-empty list of them")
    if len(data) > MAX_DOCUMENTS:
        raise ApiError(400, "too_many_documents", f"at most {MAX_DOCUMENTS} documents per request",
                       {"max_documents": MAX_DOCUMENTS, "documents": len(data)})
    return data, True


_DOCUMENT_SCHEMA = TelemetryPayload.model_json_schema()
_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
    _DOCUMENT_SCHEMA,
    {"type": "array", "items": _DOCUMENT_SCHEMA, "minItems": 1, "maxItems": MAX_DOCUMENTS},
]}}}}}


@router.post(
    "/telemetry", status_code=200, openapi_extra=_BODY,
    responses={202: {"model": S.TelemetryIngestResult,
                     "description": "Accepted; some documents were kept out of the ledger (unknown device, quarantined)"},
               413: {"model": S.ErrorBody, "description": "The body is too large"},
               **S.errors(400, 401, 403)})
async def post_telemetry(request: Request, response: Response,
                         principal: Principal = Depends(require_ingest)) -> S.TelemetryIngestResult:
    """Seed-002 telemetry documents (one, or a list) into the ledger.

    Units as the firmware sends them (W, Wh); the registry decides the device's
    classroom. A document from an unregistered device is kept and replayed once the
    device is registered (``wattline devices add``); the same document (or the same
    device, sequence number and uptime) twice changes nothing.
    """
    docs, is_list = _documents(await request.body())
    payloads, errors = parse_documents(docs)
    if errors:  # before anything is written: an invalid document changes nothing
        e = errors[0]
        details = {"field": e.field, "errors": list(e.errors), "invalid_documents": len(errors)}
        if is_list:
            details = {"index": e.index, **details}
        raise ApiError(400, "invalid_payload", f"document {e.index}: {e.message}" if is_list else e.message,
                       details)
    ctx = request.app.state.ctx
    org = await asyncio.to_thread(_organization, request, principal)
    result = await asyncio.to_thread(ingest_payloads, ctx.pipeline, ctx.dbs.main_reader, org, payloads, docs,
                                     source="http", main=ctx.dbs.main)
    if result.unknown_device or result.quarantined:
        response.status_code = 202
    return S.TelemetryIngestResult(documents=len(docs), classroom_mismatches=result.classroom_mismatches,
                                   **result.to_dict())



def _signal_body(model) -> dict:
    schema = model.model_json_schema()
    # over HTTP no topic names the controller: the body must (parse_signals refuses it otherwise)
    name = schema["properties"]["esp32_name"]
    schema["properties"]["esp32_name"] = {**next(b for b in name["anyOf"] if b.get("type") == "string"),
                                          "description": "the controller, e.g. ESP01"}
    schema["required"] = sorted({*schema.get("required", ()), "esp32_name"})
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
        schema, {"type": "array", "items": schema, "minItems": 1, "maxItems": MAX_DOCUMENTS}]}}}}}


async def _post_signals(request: Request, principal: Principal, kind: str) -> SS.StatusIngestResult:
    docs, is_list = _documents(await request.body())
    signals, errors = parse_signals(docs, kind)
    if errors:  # before anything is written
        e = errors[0]
        details = {"field": e.field, "errors": list(e.errors), "invalid_documents": len(errors)}
        if is_list:
            details = {"index": e.index, **details}
        raise ApiError(400, "invalid_payload", f"document {e.index}: {e.message}" if is_list else e.message,
                       details)
    ctx = request.app.state.ctx
    org = await asyncio.to_thread(_organization, request, principal)
    result = await asyncio.to_thread(record_valid, ctx.pipeline.telemetry, org, kind, signals, docs, source="http")
    return SS.StatusIngestResult(documents=len(docs), statuses=result.statuses, heartbeats=result.heartbeats,
                                 status_changes=result.status_changes)


@router.post("/status", openapi_extra=_signal_body(StatusPayload), responses={
    413: {"model": S.ErrorBody, "description": "The body is too large"}, **S.errors(400, 401, 403)})
async def post_status(request: Request, principal: Principal = Depends(require_ingest)) -> SS.StatusIngestResult:
    """A controller's status (``{"esp32_name": "ESP01", "status": "offline"}``; one or a
    list), for controllers without MQTT; a repeat of the current status changes nothing."""
    return await _post_signals(request, principal, STATUS)


@router.post("/heartbeat", openapi_extra=_signal_body(HeartbeatPayload), responses={
    413: {"model": S.ErrorBody, "description": "The body is too large"}, **S.errors(400, 401, 403)})
async def post_heartbeat(request: Request, principal: Principal = Depends(require_ingest)) -> SS.StatusIngestResult:
    """A controller's heartbeat (``esp32_name``, optional ``timestamp``, ``uptime_seconds``,
    ``wifi_rssi`` dBm, ``firmware_ver``; one or a list), for controllers without MQTT."""
    return await _post_signals(request, principal, HEARTBEAT)


Viewer = Annotated[Principal, Depends(require_role("viewer"))]


@router.get("/health", responses=S.errors(401, 403))
async def get_health(request: Request, principal: Viewer) -> SS.CampusHealth:
    """Seed 004's health report for the caller's organization: telemetry events (total,
    unprocessed, last hour), online devices from status and heartbeats, ledger counts,
    resets detected, the last aggregation and reconciliation runs."""
    ctx = request.app.state.ctx
    org = await asyncio.to_thread(_organization, request, principal)
    report = await asyncio.to_thread(campus_health.health_report, ctx.dbs.telemetry, ctx.dbs.main_reader, org)
    return SS.CampusHealth.model_validate(report)


@router.get("/devices", responses=S.errors(401, 403))
async def get_devices(request: Request, principal: Viewer) -> SS.DeviceList:
    """Every device of the caller's organization with its controller's state now."""
    ctx = request.app.state.ctx
    org = await asyncio.to_thread(_organization, request, principal)
    rows = await asyncio.to_thread(campus_health.devices_overview, ctx.dbs.telemetry, ctx.dbs.main_reader, org)
    online = sum(1 for r in rows if r["online"])
    return SS.DeviceList(devices=[SS.DeviceListItem(**r) for r in rows], online=online, offline=len(rows) - online)


@router.get("/devices/{esp32_name}/{device_id}", responses=S.errors(400, 401, 403, 404))
async def get_device(request: Request, principal: Viewer, esp32_name: str, device_id: str,
                     days: int = Query(31, ge=1, le=366, description="local days of energy, up to today")
                     ) -> SS.DeviceOverview:
    """A device: its controller's state now (online, last seen, firmware and rssi of the
    last heartbeat), the status history and offline spells, and its daily energy."""
    ctx = request.app.state.ctx
    org = await asyncio.to_thread(_organization, request, principal)
    try:
        data = await asyncio.to_thread(campus_health.device_overview, ctx.dbs.telemetry, ctx.dbs.main_reader, org,
                                       esp32_name, device_id, days=days)
    except campus_health.DeviceNotFound as exc:
        raise ApiError(404, "not_found", str(exc), {"esp32_name": esp32_name, "device_id": device_id}) from None
    return SS.DeviceOverview.model_validate(data)

"""Emulated Solarman OpenAPI, under its real paths.

=================================  ===================================================
``POST /account/v1.0/token``       ``?appId=``; body ``appSecret``, ``email`` or
                                   ``username``, ``password`` (lowercase hex SHA-256)
``POST /station/v1.0/history``     Bearer token; ``stationId``, ``timeType`` (1),
                                   ``startTimestamp``/``endTimestamp`` (epoch s, both
                                   inclusive, span < 7 days), ``page`` (1-based),
                                   ``size`` (<= 500); answers ``total`` and
                                   ``stationDataItems`` sorted by time
``POST /station/v1.0/list``        Bearer token; ``page``, ``size``; answers ``total``,
                                   ``stationList``
=================================  ===================================================

Records look like seed 000's example: ``stationId``, ``lastUpdateTime`` (epoch s as a
float), ``generationPower`` (W, 0.1 W), ``generationValue`` (kWh today, 1 Wh) and
``generationUploadTotalOffset`` (kWh total, 1 Wh). Errors are HTTP 200 with
``{"success": false, "code", "msg"}``, except an unknown or expired token: HTTP 401,
code ``2101000``. Codes: ``2101003`` bad appId/appSecret, ``2101019`` bad account or
password, ``2101024`` invalid parameter (range, page size), ``2101016`` unknown station.
These codes are the emulation's own: no real capture of this API was available.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from .common import account_limited, before_call, cloud, read_json
from .history import plant_series
from .state import CallRecord, CloudState

VENDOR = "solarman"
RECORD_FIELDS = ["lastUpdateTime", "generationUploadTotalOffset", "generationPower", "generationValue"]
CODE_TOKEN = "2101000"
CODE_APP = "2101003"
CODE_LOGIN = "2101019"
CODE_PARAM = "2101024"
CODE_STATION = "2101016"

_RATE_LIMITED = {"success": False, "code": "429", "msg": "Too Many Requests"}

router = APIRouter()


def _request_id() -> str:
    return secrets.token_hex(8)


def _error(code: str, msg: str, status: int = 200) -> JSONResponse:
    body = {"code": code, "msg": msg, "success": False, "requestId": _request_id()}
    return JSONResponse(body, status_code=status)


def _int(body: dict, key: str) -> int | None:
    value = body.get(key)
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _authorized(request: Request, state: CloudState) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return state.tokens[VENDOR].account(token.strip())


@router.post("/account/v1.0/token")
async def token(request: Request) -> Response:
    state = cloud(request)
    early, _ = await before_call(request, VENDOR, "token", _RATE_LIMITED)
    if early is not None:
        return early
    body = await read_json(request)
    app_id = request.query_params.get("appId")
    if body is None or not app_id:
        state.stats.add(CallRecord(VENDOR, "token", 200, error="param"))
        return _error(CODE_PARAM, "invalid param")
    apps = [c for c in state.settings(VENDOR).credentials if str(c.get("app_id")) == app_id]
    if not apps or all(str(c.get("app_secret")) != str(body.get("appSecret")) for c in apps):
        state.stats.add(CallRecord(VENDOR, "token", 200, error="auth"))
        return _error(CODE_APP, "appId or appSecret is invalid")
    login = str(body.get("email") or body.get("username") or "")
    password = str(body.get("password") or "").lower()
    for cred in apps:
        user_ok = login in (str(cred.get("email", "")), str(cred.get("username", ""))) and login
        pw_ok = hashlib.sha256(str(cred.get("password", "")).encode()).hexdigest() == password
        if str(cred.get("app_secret")) == str(body.get("appSecret")) and user_ok and pw_ok:
            account = f"{app_id}:{login}"
            tok = state.tokens[VENDOR].issue(account)
            state.stats.add(CallRecord(VENDOR, "token", 200))
            return JSONResponse(
                {
                    "code": None,
                    "msg": None,
                    "success": True,
                    "requestId": _request_id(),
                    "access_token": tok,
                    "token_type": "bearer",
                    "refresh_token": secrets.token_hex(16),
                    "expires_in": str(int(state.config.token_ttl_s)),
                    "scope": "all",
                    "uid": abs(hash(account)) % 10**8,
                }
            )
    state.stats.add(CallRecord(VENDOR, "token", 200, error="auth"))
    return _error(CODE_LOGIN, "the account or password is incorrect")


def _format_items(station: Any, series: Any) -> list[str]:
    """Seed-shaped records as JSON text (formatted directly: ~66k records in ~0.1 s)."""
    sid = json.dumps(station)
    template = (
        '{"stationId":' + sid + ',"lastUpdateTime":%.1f,"generationPower":%.1f,'
        '"generationValue":%.3f,"generationUploadTotalOffset":%.3f}'
    )
    return [
        template % row
        for row in zip(
            series.ts.astype(float).tolist(),
            (series.power_kw * 1000.0).tolist(),
            series.energy_today_kwh.tolist(),
            series.energy_total_kwh.tolist(),
        )
    ]


def _corrupt(item_text: str, field: str, mode: str) -> str:
    item = json.loads(item_text)
    if mode == "missing":
        item.pop(field, None)
    elif mode == "non_numeric":
        item[field] = "N/A"
    else:
        item[field] = None
    return json.dumps(item, separators=(",", ":"))


@router.post("/station/v1.0/history")
async def station_history(request: Request) -> Response:
    state = cloud(request)
    early, fault = await before_call(request, VENDOR, "history", _RATE_LIMITED)
    if early is not None:
        return early
    account = _authorized(request, state)
    if account is None:
        state.stats.add(CallRecord(VENDOR, "history", 401, fault, error="token"))
        return _error(CODE_TOKEN, "auth invalid token", status=401)
    limited = account_limited(state, VENDOR, "history", account, _RATE_LIMITED)
    if limited is not None:
        return limited
    body = await read_json(request) or {}
    station = body.get("stationId")
    start, end = _int(body, "startTimestamp"), _int(body, "endTimestamp")
    page, size = _int(body, "page") or 1, _int(body, "size") or 20
    settings = state.settings(VENDOR)
    problem = None
    if station in (None, ""):
        problem = "stationId is required"
    elif _int(body, "timeType") != 1:
        problem = "only timeType 1 (frame data) is available"
    elif start is None or end is None or end < start:
        problem = "startTimestamp and endTimestamp are required, start <= end"
    elif end - start >= settings.max_range_s:
        problem = f"time range must be shorter than {settings.max_range_s // 86400} days"
    elif page < 1 or not 1 <= size <= settings.max_page_size:
        problem = f"page must be >= 1 and size within 1..{settings.max_page_size}"
    if problem:
        state.stats.add(CallRecord(VENDOR, "history", 200, fault, str(station), error="param"))
        return _error(CODE_PARAM, problem)
    profile = state.plant(VENDOR, str(station))
    if profile is None:
        state.stats.add(CallRecord(VENDOR, "history", 200, fault, str(station), error="plant"))
        return _error(CODE_STATION, "station not found")
    series = plant_series(str(station), profile, start, end + 1, state.now(), state.config.history_source)
    total = len(series)
    chunk = series.slice((page - 1) * size, page * size)
    items = _format_items(station, chunk)
    if fault == "malformed":
        for i, field, mode in state.faults.corruptions(len(items), RECORD_FIELDS):
            items[i] = _corrupt(items[i], field, mode)
    state.stats.add(
        CallRecord(VENDOR, "history", 200, fault, str(station), (str(start), str(end)), page, len(items))
    )
    text = (
        '{"code":null,"msg":null,"success":true,"requestId":"%s","total":%d,"stationDataItems":[%s]}'
        % (_request_id(), total, ",".join(items))
    )
    return Response(text, media_type="application/json")


@router.post("/station/v1.0/list")
async def station_list(request: Request) -> Response:
    state = cloud(request)
    early, fault = await before_call(request, VENDOR, "list", _RATE_LIMITED)
    if early is not None:
        return early
    account = _authorized(request, state)
    if account is None:
        state.stats.add(CallRecord(VENDOR, "list", 401, fault, error="token"))
        return _error(CODE_TOKEN, "auth invalid token", status=401)
    body = await read_json(request) or {}
    page, size = _int(body, "page") or 1, _int(body, "size") or 20
    if page < 1 or not 1 <= size <= 100:
        state.stats.add(CallRecord(VENDOR, "list", 200, fault, error="param"))
        return _error(CODE_PARAM, "page must be >= 1 and size within 1..100")
    plants = sorted(state.settings(VENDOR).plants.items())
    stations = []
    for plant_id, profile in plants[(page - 1) * size : page * size]:
        stations.append(
            {
                "id": int(plant_id) if plant_id.isdigit() else plant_id,
                "name": profile.name or f"Plant {plant_id}",
                "type": "HOUSE_ROOF",
                "locationLat": profile.latitude,
                "locationLng": profile.longitude,
                "installedCapacity": profile.capacity_kw,
                "startOperatingTime": float(profile.start_operating_ts),
                "regionTimezone": profile.timezone,
            }
        )
    state.stats.add(CallRecord(VENDOR, "list", 200, fault, records=len(stations)))
    body = {"code": None, "msg": None, "success": True, "requestId": _request_id()}
    return JSONResponse({**body, "total": len(plants), "stationList": stations})

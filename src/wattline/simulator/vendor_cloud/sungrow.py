"""Emulated Sungrow iSolarCloud gateway, under its real paths, in the captured shapes.

=================================================  ======================================
``POST /v1/userService/login``                     ``appkey``, ``user_account``,
                                                   ``user_password``
``POST /v1/powerStationService/getPsList``         ``curPage``, ``size`` (<= 100);
                                                   ``pageList`` + ``rowCount``
``POST /v1/commonService/queryMutiPointDataList``  ``ps_key``, ``points``,
                                                   ``minute_interval`` (15/30/60),
                                                   ``start_time_stamp``/``end_time_stamp``
                                                   (plant-local ``YYYYMMDDHHMMSS``, end
                                                   inclusive, wall span < 7 days)
=================================================  ======================================

Every answer is the ``req_serial_num`` / ``result_code`` / ``result_msg`` /
``result_data`` envelope with numbers as strings, as in ``vendor-fixtures``:
``E00003`` / ``er_token_login_invalid`` for an unknown or expired token (same body as
the capture), ``E00000`` / ``er_invalid_appkey`` for a wrong appkey, a wrong password
answers ``result_code "1"`` with ``login_state "0"``, bad parameters answer
``-1`` / ``er_parameter_value_invalid``. Point series are in base units: ``p83024``
total yield Wh, ``p83033`` power W, ``p83022`` daily yield Wh, integer values written
like ``"56100.0"``; slots before the plant started or after "now" are ``"--"``.

Values are keyed by local wall time, as the real API does: in the hour repeated when
DST ends, both instants map to one key and the first one is served.
"""

from __future__ import annotations

import json
import secrets
import zlib
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from wattline.domain.timeutil import zone

from .common import account_limited, before_call, cloud, read_json
from .history import plant_series
from .state import CallRecord, CloudState

VENDOR = "sungrow"
POINTS = ("p83024", "p83033", "p83022")  # total yield Wh, power W, daily yield Wh
NO_VALUE = "--"
BAD_PARAM = "er_parameter_value_invalid"
_WRONG_PASSWORD_MSG = "账号或密码输入错误，还剩4次机会"  # as captured: "wrong account or password, 4 tries left"

router = APIRouter()


def _serial() -> str:
    return datetime.now().strftime("%Y%m%d") + secrets.token_hex(12)


def _envelope(code: str, msg: str, data: Any) -> JSONResponse:
    return JSONResponse({"req_serial_num": _serial(), "result_code": code, "result_data": data, "result_msg": msg})


def _token_invalid() -> JSONResponse:
    # byte-for-byte the shape of error_E00003_token_login_invalid.json (no req_serial_num)
    return JSONResponse({"result_code": "E00003", "result_data": None, "result_msg": "er_token_login_invalid"})


def _appkeys(state: CloudState) -> set[str]:
    return {str(c.get("appkey")) for c in state.settings(VENDOR).credentials}


def _user_id(account: str) -> str:
    return str(100000 + zlib.crc32(account.encode()) % 900000)


def _authorized(state: CloudState, body: dict) -> tuple[str | None, JSONResponse | None, str | None]:
    """(account, None, None) or (None, the vendor's error answer, "auth" / "token")."""
    if str(body.get("appkey")) not in _appkeys(state):
        return None, _envelope("E00000", "er_invalid_appkey", None), "auth"
    account = state.tokens[VENDOR].account(str(body.get("token") or ""))
    if account is None:
        return None, _token_invalid(), "token"
    return account, None, None


@router.post("/v1/userService/login")
async def login(request: Request) -> Response:
    state = cloud(request)
    early, _ = await before_call(request, VENDOR, "login", "Too Many Requests")
    if early is not None:
        return early
    body = await read_json(request) or {}
    if str(body.get("appkey")) not in _appkeys(state):
        state.stats.add(CallRecord(VENDOR, "login", 200, error="auth"))
        return _envelope("E00000", "er_invalid_appkey", None)
    user, password = str(body.get("user_account") or ""), str(body.get("user_password") or "")
    for cred in state.settings(VENDOR).credentials:
        if (
            str(cred.get("appkey")) == str(body.get("appkey"))
            and user
            and user == str(cred.get("username"))
            and password == str(cred.get("password"))
        ):
            uid = _user_id(user)
            token = state.tokens[VENDOR].issue(user, prefix=f"{uid}_")  # "<user_id>_<hex>"
            state.stats.add(CallRecord(VENDOR, "login", 200))
            return _envelope(
                "1",
                "success",
                {"login_state": "1", "token": token, "user_id": uid, "user_account": user, "user_name": user},
            )
    state.stats.add(CallRecord(VENDOR, "login", 200, error="auth"))
    return _envelope(
        "1",
        "success",
        {"err_times": "1", "login_state": "0", "msg": _WRONG_PASSWORD_MSG, "remain_times": "4"},
    )


def _gmt_label(tz: str, ts: float) -> str:
    offset = datetime.fromtimestamp(ts, zone(tz)).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign = "-" if minutes < 0 else "+"
    h, m = divmod(abs(minutes), 60)
    return f"GMT{sign}{h}" + (f":{m:02d}" if m else "")


@router.post("/v1/powerStationService/getPsList")
async def ps_list(request: Request) -> Response:
    state = cloud(request)
    early, fault = await before_call(request, VENDOR, "getPsList", "Too Many Requests")
    if early is not None:
        return early
    body = await read_json(request) or {}
    account, refusal, why = _authorized(state, body)
    if refusal is not None:
        state.stats.add(CallRecord(VENDOR, "getPsList", 200, fault, error=why))
        return refusal
    try:
        page, size = int(body.get("curPage", 1)), int(body.get("size", 10))
    except (TypeError, ValueError):
        page, size = 0, 0
    if page < 1 or not 1 <= size <= 100:
        state.stats.add(CallRecord(VENDOR, "getPsList", 200, fault, error="param"))
        return _envelope("-1", BAD_PARAM, None)
    now = state.now()
    plants = sorted(state.settings(VENDOR).plants.items())
    rows = []
    for plant_id, profile in plants[(page - 1) * size : page * size]:
        latest = plant_series(plant_id, profile, int(now) - 900, int(now) + 1, now, state.config.history_source)
        total_kwh = float(latest.energy_total_kwh[-1]) if len(latest) else profile.initial_energy_kwh
        power_w = float(latest.power_kw[-1]) * 1000 if len(latest) else 0.0
        today_kwh = float(latest.energy_today_kwh[-1]) if len(latest) else 0.0
        start_local = datetime.fromtimestamp(profile.start_operating_ts, zone(profile.timezone))
        rows.append(
            {
                "ps_id": int(plant_id) if plant_id.isdigit() else plant_id,
                "ps_name": profile.name or f"Plant {plant_id}",
                "ps_short_name": f"W{zlib.crc32(plant_id.encode()):010d}",
                "ps_type": 5,
                "ps_status": 1,
                "ps_timezone": _gmt_label(profile.timezone, now),
                "install_date": start_local.strftime("%Y-%m-%d %H:%M:%S"),
                "design_capacity": f"{profile.capacity_kw:g}",
                "design_capacity_unit": "kWp",
                "design_capacity_virgin": profile.capacity_kw * 1000.0,
                "latitude": profile.latitude,
                "longitude": profile.longitude,
                "curr_power": {"unit": "W", "value": f"{power_w:.0f}"},
                "today_energy": {"unit": "kWh", "value": f"{today_kwh:.1f}"},
                "total_energy": {"unit": "kWh", "value": f"{total_kwh:.1f}"},
            }
        )
    state.stats.add(CallRecord(VENDOR, "getPsList", 200, fault, records=len(rows)))
    return _envelope("1", "success", {"pageList": rows, "rowCount": len(plants)})


def local_stamps(ts: np.ndarray, tz: str) -> list[str]:
    """``YYYYMMDDHHMMSS`` wall-clock keys of UTC epoch seconds in ``tz`` (vectorised)."""
    if len(ts) == 0:
        return []
    local = pd.to_datetime(ts, unit="s", utc=True).tz_convert(tz).tz_localize(None)
    text = np.datetime_as_string(local.values.astype("datetime64[s]"), unit="s").tolist()
    return [t[0:4] + t[5:7] + t[8:10] + t[11:13] + t[14:16] + t[17:19] for t in text]


def _naive(stamp: Any) -> datetime | None:
    try:
        text = str(stamp)
        return datetime.strptime(text, "%Y%m%d%H%M%S") if len(text) == 14 else None
    except ValueError:
        return None


def _corrupt(data: dict[str, dict], keys: list[str], state: CloudState) -> None:
    """Damage 1-3 served slots in place: drop a value, make it non-numeric, or null."""
    points = list(data)
    for i, point, mode in state.faults.corruptions(len(keys), points):
        if mode == "missing":
            data[point].pop(keys[i], None)
        elif mode == "non_numeric":
            data[point][keys[i]] = "N/A"
        else:
            data[point][keys[i]] = None


@router.post("/v1/commonService/queryMutiPointDataList")
async def query_multi_point_data(request: Request) -> Response:
    state = cloud(request)
    early, fault = await before_call(request, VENDOR, "queryMutiPointDataList", "Too Many Requests")
    if early is not None:
        return early
    body = await read_json(request) or {}
    account, refusal, why = _authorized(state, body)
    if refusal is not None:
        state.stats.add(CallRecord(VENDOR, "queryMutiPointDataList", 200, fault, error=why))
        return refusal
    limited = account_limited(state, VENDOR, "queryMutiPointDataList", account, "Too Many Requests")
    if limited is not None:
        return limited

    def bad(plant: str | None = None) -> JSONResponse:
        state.stats.add(CallRecord(VENDOR, "queryMutiPointDataList", 200, fault, plant, error="param"))
        return _envelope("-1", BAD_PARAM, None)

    start_s, end_s = str(body.get("start_time_stamp", "")), str(body.get("end_time_stamp", ""))
    start_n, end_n = _naive(start_s), _naive(end_s)
    interval = str(body.get("minute_interval", ""))
    keys = list(dict.fromkeys(k.strip() for k in str(body.get("ps_key", "")).split(",") if k.strip()))
    points = [p for p in str(body.get("points", "")).split(",") if p.strip() in POINTS]
    if start_n is None or end_n is None or end_n < start_n or interval not in ("15", "30", "60") or not keys:
        return bad()
    if (end_n - start_n).total_seconds() >= state.settings(VENDOR).max_range_s:
        return bad()
    step = int(interval) * 60
    result: dict[str, dict] = {}
    served_keys: list[tuple[str, list[str]]] = []
    for ps_key in keys:
        plant_id = ps_key.split("_")[0]
        profile = state.plant(VENDOR, plant_id)
        if profile is None:
            return bad(plant_id)
        z = zone(profile.timezone)
        lo = int(start_n.replace(tzinfo=z, fold=0).timestamp())
        hi = int(end_n.replace(tzinfo=z, fold=1).timestamp())
        grid = np.arange(-(-lo // step) * step, hi + 1, step, dtype=np.int64)
        first = int(grid[0]) if len(grid) else lo
        series = plant_series(plant_id, profile, first, hi + 1, state.now(), state.config.history_source)
        if step != 900:  # 30- or 60-minute intervals: samples on those multiples only
            series = series.take(series.ts % step == 0)
        pos = {int(t): i for i, t in enumerate(series.ts.tolist())}
        columns = {
            "p83024": [f"{round(v * 1000)}.0" for v in series.energy_total_kwh.tolist()],
            "p83033": [f"{round(v * 1000)}.0" for v in series.power_kw.tolist()],
            "p83022": [f"{round(v * 1000)}.0" for v in series.energy_today_kwh.tolist()],
        }
        data: dict[str, dict] = {p: {} for p in points}
        kept: list[str] = []
        for t, key in zip(grid.tolist(), local_stamps(grid, profile.timezone)):
            if not start_s <= key <= end_s or key in (data[points[0]] if points else {}):
                continue  # outside the wall range asked, or the repeated DST hour
            i = pos.get(t)
            for p in points:
                data[p][key] = NO_VALUE if i is None else columns[p][i]
            if i is not None:
                kept.append(key)
        if fault == "malformed" and points:
            _corrupt(data, kept, state)
        result[ps_key] = data
        served_keys.append((plant_id, kept))
    for plant_id, kept in served_keys:
        state.stats.add(
            CallRecord(VENDOR, "queryMutiPointDataList", 200, fault, plant_id, (start_s, end_s), None, len(kept))
        )
    text = json.dumps(
        {"req_serial_num": _serial(), "result_code": "1", "result_data": result, "result_msg": "success"},
        separators=(",", ":"),
    )
    return Response(text, media_type="application/json")

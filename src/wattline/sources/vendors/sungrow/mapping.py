"""iSolarCloud answers -> Wattline records: the envelope, login, point data, plant list.

Raw point series are in base units (observed): ``p83022`` daily yield in **Wh**,
``p83033`` plant power in **W**; ``p83024`` plant total yield is taken as Wh likewise
(GoSungrow's point list gives display units kWh/kW).

=========  =====================  ======  ==============================
point id   Wattline point         vendor  canonical
=========  =====================  ======  ==============================
p83024     ``energy_total``       Wh      kWh (/1000)
p83033     ``power``              W       kW (/1000)
p83022     ``energy_today``       Wh      kWh (/1000), resets at local midnight
=========  =====================  ======  ==============================

Local timestamps are converted with the plant's IANA zone, DST-aware: an ambiguous
wall time (the repeated hour when DST ends) is read as its first occurrence; a wall
time that does not exist (the skipped hour) is rejected.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta, timezone as dt_timezone
from functools import lru_cache
from typing import Any

from wattline.domain.metrics import MetricType
from wattline.domain.timeutil import zone

from ..errors import VendorAuthError, VendorRequestError, VendorUnavailable
from ..http import TokenInvalid
from ..models import (
    ENERGY_TODAY,
    ENERGY_TOTAL,
    POWER,
    RejectedRecord,
    VendorPlant,
    VendorPointSpec,
    VendorRecord,
)
from ..parsing import BadValue, to_number

NO_VALUE = "--"
OK = "1"
TOKEN_INVALID_CODE = "E00003"
TOKEN_INVALID_MSG = "er_token_login_invalid"
INVALID_APPKEY_MSG = "er_invalid_appkey"
DATA_PATH = "/v1/commonService/queryMutiPointDataList"
LOGIN_PATH = "/v1/userService/login"
PS_LIST_PATH = "/v1/powerStationService/getPsList"

POINTS = [
    VendorPointSpec(ENERGY_TOTAL, MetricType.COUNTER, "p83024", "Wh"),
    VendorPointSpec(POWER, MetricType.POWER, "p83033", "W"),
    VendorPointSpec(ENERGY_TODAY, MetricType.COUNTER, "p83022", "Wh", daily_reset=True),
]

_STAMP = re.compile(r"^\d{14}$")
_GMT = re.compile(r"^(?:GMT|UTC)\s*([+-])(\d{1,2})(?::?(\d{2}))?$")


# -- local time <-> UTC ------------------------------------------------------------------


def local_stamp(ts: int, tz: str) -> str:
    """``YYYYMMDDHHMMSS`` of epoch ``ts`` in zone ``tz``."""
    return datetime.fromtimestamp(int(ts), zone(tz)).strftime("%Y%m%d%H%M%S")


@lru_cache(maxsize=131072)
def _hour_start_utc(hour_stamp: str, tz: str) -> int | None:
    """UTC epoch of local ``YYYYMMDDHH``:00 when one offset holds for the whole hour.

    ``None`` when the hour holds a DST transition (then each stamp is converted on
    its own). Ambiguous hours resolve to their first occurrence (fold=0).
    """
    z = zone(tz)
    y, m, d, h = int(hour_stamp[0:4]), int(hour_stamp[4:6]), int(hour_stamp[6:8]), int(hour_stamp[8:10])
    first = datetime(y, m, d, h, 0, 0, tzinfo=z)
    last = datetime(y, m, d, h, 59, 59, tzinfo=z)
    if first.utcoffset() != last.utcoffset():
        return None
    ts = int(first.timestamp())
    if datetime.fromtimestamp(ts, z).replace(tzinfo=None) != first.replace(tzinfo=None):
        return None  # the wall time does not exist (DST gap)
    return ts


def parse_stamp(stamp: str, tz: str) -> int:
    """UTC epoch seconds of a plant-local ``YYYYMMDDHHMMSS``; BadValue if invalid."""
    if not isinstance(stamp, str) or not _STAMP.match(stamp):
        raise BadValue(f"time stamp {stamp!r} is not YYYYMMDDHHMMSS")
    minute, second = int(stamp[10:12]), int(stamp[12:14])
    if minute > 59 or second > 59:
        raise BadValue(f"time stamp {stamp!r} is not a valid time")
    try:
        base = _hour_start_utc(stamp[:10], tz)
    except ValueError:
        raise BadValue(f"time stamp {stamp!r} is not a valid date") from None
    if base is not None:
        return base + minute * 60 + second
    z = zone(tz)
    naive = datetime(int(stamp[0:4]), int(stamp[4:6]), int(stamp[6:8]), int(stamp[8:10]), minute, second)
    ts = int(naive.replace(tzinfo=z).timestamp())
    if datetime.fromtimestamp(ts, z).replace(tzinfo=None) != naive:
        raise BadValue(f"local time {stamp} does not exist in {tz} (DST gap)")
    return ts


def wall_seconds(ts: int, tz: str) -> int:
    """Epoch ``ts`` as wall-clock seconds in ``tz`` (local time read as if it were UTC)."""
    local = datetime.fromtimestamp(int(ts), zone(tz))
    return calendar.timegm(local.replace(tzinfo=None).timetuple())


# -- payload parsing -------------------------------------------------------------------------


def check_envelope(payload: Any) -> Any:
    """``result_data`` of a successful envelope, or the matching VendorError."""
    if not isinstance(payload, dict) or "result_code" not in payload:
        raise VendorUnavailable("response without the result_code envelope")
    code = str(payload.get("result_code"))
    msg = str(payload.get("result_msg") or "")
    if code == OK:
        return payload.get("result_data")
    if code == TOKEN_INVALID_CODE or msg == TOKEN_INVALID_MSG:
        raise TokenInvalid(msg or "token invalid", code=code)
    if msg == INVALID_APPKEY_MSG:
        raise VendorAuthError("appkey refused", code=code)
    raise VendorRequestError(msg or "request refused", code=code)


def parse_login(result_data: Any) -> tuple[str, str]:
    """(token, user_id) from a login answer; VendorAuthError when the login was refused."""
    data = result_data if isinstance(result_data, dict) else {}
    state = str(data.get("login_state", ""))
    token = data.get("token")
    if state != "1" or not token:
        # the vendor's own message is a localized hint (e.g. attempts left); no secrets
        detail = f"login_state={state or '?'}"
        if data.get("remain_times") is not None:
            detail += f", {data.get('remain_times')} attempts left"
        raise VendorAuthError(f"login refused ({detail})", code=state or None)
    return str(token), str(data.get("user_id") or "")


def _series_of(result_data: Any, ps_key: str) -> dict[str, dict]:
    """The ``point -> {stamp: value}`` map for ``ps_key`` (empty answers allowed)."""
    if result_data in (None, [], {}):
        return {}
    if not isinstance(result_data, dict):
        raise VendorUnavailable("point data is not an object")
    series = result_data.get(ps_key)
    if series is None:
        return {}
    if not isinstance(series, dict) or not all(isinstance(v, dict) for v in series.values()):
        raise VendorUnavailable(f"point data for {ps_key} is not point -> {{stamp: value}}")
    return series


def count_point_data(payload: Any, ps_key: str) -> int:
    """Validate a queryMutiPointDataList answer's shape and count its time stamps."""
    series = _series_of(payload, ps_key)
    stamps: set[str] = set()
    for values in series.values():
        stamps.update(values)
    return len(stamps)


def parse_point_data(
    result_data: Any, ps_key: str, tz: str, points: list[VendorPointSpec] = POINTS
) -> tuple[list[VendorRecord], list[RejectedRecord], int]:
    """Records from a queryMutiPointDataList ``result_data``.

    Returns (records, rejected, empty_slots). A point absent from the whole answer is
    simply not reported; a stamp missing from one point, a null or a non-numeric value
    rejects that stamp's record; a slot that is ``"--"`` in every point is an empty
    slot (no reading yet), counted but not a record.
    """
    series = _series_of(result_data, ps_key)
    present = [
        (p.key, p.vendor_field, p.factor, series[p.vendor_field]) for p in points if p.vendor_field in series
    ]
    stamps = sorted({s for *_, column in present for s in column})
    records: list[VendorRecord] = []
    rejected: list[RejectedRecord] = []
    empty = 0
    for stamp in stamps:
        raw: dict[str, Any] = {"ps_key": ps_key, "time_stamp": stamp}
        problems: list[str] = []
        values: dict[str, float] = {}
        no_value: list[str] = []
        for key, field, factor, column in present:
            if stamp not in column:
                problems.append(f"{field} is missing")
                continue
            value = raw[field] = column[stamp]
            if value == NO_VALUE:
                no_value.append(field)
                continue
            try:
                values[key] = to_number(value, field) * factor
            except BadValue as exc:
                problems.append(str(exc))
        try:
            ts = parse_stamp(stamp, tz)
        except BadValue as exc:
            problems.insert(0, str(exc))
        if problems:
            rejected.append(RejectedRecord(raw=raw, reason="; ".join(problems)))
        elif len(no_value) == len(present):
            empty += 1
        elif no_value:
            rejected.append(
                RejectedRecord(raw=raw, reason=f"no value ('--') for {', '.join(no_value)} only")
            )
        else:
            records.append(VendorRecord(ts=ts, values=values, raw=raw))
    return records, rejected, empty


def _gmt_offset(text: Any) -> dt_timezone | None:
    """``GMT+10`` / ``GMT-3:30`` (getPsList's ``ps_timezone``) as a fixed offset."""
    match = _GMT.match(str(text or "").strip())
    if not match:
        return None
    sign = -1 if match.group(1) == "-" else 1
    delta = timedelta(hours=int(match.group(2)), minutes=int(match.group(3) or 0))
    return dt_timezone(sign * delta)


def parse_ps_list_item(item: dict) -> VendorPlant:
    """One getPsList ``pageList`` entry as a VendorPlant."""

    def number(value: Any) -> float | None:
        if isinstance(value, dict):
            value = value.get("value")
        try:
            return to_number(value, "value")
        except BadValue:
            return None

    capacity = number(item.get("design_capacity"))
    unit = str(item.get("design_capacity_unit") or "kWp").lower()
    if capacity is not None and unit in ("wp", "w"):
        capacity /= 1000.0
    start_ts = None
    offset = _gmt_offset(item.get("ps_timezone"))
    install = item.get("install_date")
    if offset is not None and isinstance(install, str):
        try:
            start_ts = int(datetime.strptime(install, "%Y-%m-%d %H:%M:%S").replace(tzinfo=offset).timestamp())
        except ValueError:
            start_ts = None
    return VendorPlant(
        vendor_plant_id=str(item.get("ps_id")),
        name=str(item.get("ps_name") or ""),
        capacity_kw=capacity,
        timezone=None,  # only "GMT+10"-style offsets are given, not an IANA zone
        latitude=number(item.get("latitude")),
        longitude=number(item.get("longitude")),
        start_operating_ts=start_ts,
        raw=item,
    )

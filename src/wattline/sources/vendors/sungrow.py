"""Sungrow iSolarCloud (the web/app gateway, e.g. ``augateway.isolarcloud.com``).

Written against the real captures in ``vendor-fixtures/sungrow-isolarcloud/``:

* Every call is ``POST /v1/<service>/<method>`` with a JSON body carrying ``appkey``,
  ``sys_code``, ``lang``, and after login ``token`` and ``user_id``.
* Every answer is the envelope ``{"req_serial_num", "result_code", "result_msg",
  "result_data"}``; ``result_code == "1"`` is success. ``E00003`` /
  ``er_token_login_invalid`` means the token expired: log in again once, then retry.
  ``er_invalid_appkey`` is a credential error. A wrong password still answers
  ``result_code "1"`` but with ``result_data.login_state != "1"``.
* Numbers are strings; ``"--"`` means "no value" (e.g. slots later than now).
* History: ``/v1/commonService/queryMutiPointDataList`` with ``ps_key``
  (``<ps_id>_11_0_0``), ``points``, ``minute_interval`` and
  ``start_time_stamp`` / ``end_time_stamp`` as ``YYYYMMDDHHMMSS`` in **plant-local
  time without an offset** (end inclusive). The answer maps
  ``ps_key -> point -> {YYYYMMDDHHMMSS: "value"}``; no pagination.
* Plant list: ``/v1/powerStationService/getPsList``, paginated with
  ``curPage``/``size`` and answering ``pageList`` + ``rowCount``.

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
time that does not exist (the skipped hour) is rejected. Because the vendor keys
values by wall time, one hour of the repeated pair cannot be told apart in its answer.

Credentials: ``appkey``, ``username`` (the iSolarCloud account) and ``password``.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta, timezone as dt_timezone
from functools import lru_cache
from typing import Any

import httpx

from wattline.domain.metrics import MetricType
from wattline.domain.timeutil import zone

from .base import TokenInvalid, VendorAdapter
from .errors import VendorAuthError, VendorRequestError, VendorUnavailable
from .models import (
    ENERGY_TODAY,
    ENERGY_TOTAL,
    POWER,
    CallLog,
    FetchResult,
    PointSpec,
    RejectedRecord,
    VendorLimits,
    VendorPlant,
    VendorRecord,
)
from .parsing import BadValue, to_number

NO_VALUE = "--"
OK = "1"
TOKEN_INVALID_CODE = "E00003"
TOKEN_INVALID_MSG = "er_token_login_invalid"
INVALID_APPKEY_MSG = "er_invalid_appkey"
DATA_PATH = "/v1/commonService/queryMutiPointDataList"
LOGIN_PATH = "/v1/userService/login"
PS_LIST_PATH = "/v1/powerStationService/getPsList"

POINTS = [
    PointSpec(ENERGY_TOTAL, MetricType.COUNTER, "p83024", "Wh"),
    PointSpec(POWER, MetricType.POWER, "p83033", "W"),
    PointSpec(ENERGY_TODAY, MetricType.COUNTER, "p83022", "Wh", daily_reset=True),
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


def _wall_seconds(ts: int, tz: str) -> int:
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
    result_data: Any, ps_key: str, tz: str, points: list[PointSpec] = POINTS
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


class SungrowAdapter(VendorAdapter):
    """iSolarCloud plant points at 15-minute resolution."""

    vendor_type = "sungrow"
    default_base_url = "https://augateway.isolarcloud.com"
    # Rate limits are "not documented in the source": conservative values.
    limits = VendorLimits(
        max_range_s=7 * 86400,  # wall-clock span per call, end inclusive
        page_size=None,  # queryMutiPointDataList does not page
        interval_s=900,
        calls_per_minute=30,
        calls_per_day=5_000,
        calls_per_month=None,
    )
    points = POINTS
    ps_list_page_size = 10

    _user_id: str = ""

    @staticmethod
    def ps_key(vendor_plant_id: str) -> str:
        """The plant-level device key ``<ps_id>_11_0_0`` (an id with ``_`` is taken as a key)."""
        return vendor_plant_id if "_" in vendor_plant_id else f"{vendor_plant_id}_11_0_0"

    # -- auth -----------------------------------------------------------------------

    async def _login(self, calls: list[CallLog]) -> None:
        body = {
            "appkey": self._credential("appkey", "app_key"),
            "sys_code": "900",
            "lang": "_en_US",
            "user_account": self._credential("username", "user_account", "email"),
            "user_password": self._credential("password"),
        }
        payload = await self._send("POST", LOGIN_PATH, calls=calls, auth=False, json=body)
        self._token, self._user_id = parse_login(payload.get("result_data"))
        self._token_expires_at = None  # the gateway says when: E00003

    def _authorize(self, headers: dict[str, str], body: dict[str, Any] | None) -> None:
        if body is not None:
            body["appkey"] = self._credential("appkey", "app_key")
            body["token"] = self._token
            body["user_id"] = self._user_id

    def _check(self, response: httpx.Response) -> Any:
        self._check_http(response)
        if response.status_code >= 400:
            raise VendorRequestError(f"HTTP {response.status_code}")
        payload = self._json(response)
        check_envelope(payload)
        return payload

    async def test_connection(self) -> None:
        """Log in and read the first plant page (the token must really work)."""
        await super().test_connection()
        await self._ps_list_page(1, [])

    # -- data -----------------------------------------------------------------------

    def windows(self, start_ts: int, end_ts: int, timezone: str) -> list[tuple[int, int]]:
        """Split so each call's *wall-clock* span stays under the limit.

        A window that contains the spring-forward hour spans one more wall hour than
        UTC seconds; it is shortened by an hour rather than refused by the vendor.
        """
        limit = self.limits.max_range_s
        out: list[tuple[int, int]] = []
        a = start_ts
        while a < end_ts:
            b = min(end_ts, a + limit)
            while b - a > 3600 and _wall_seconds(b - 1, timezone) - _wall_seconds(a, timezone) >= limit:
                b -= 3600
            out.append((a, b))
            a = b
        return out

    async def _fetch_window(
        self, vendor_plant_id: str, start_ts: int, end_ts: int, timezone: str, result: FetchResult
    ) -> None:
        ps_key = self.ps_key(vendor_plant_id)
        body = {
            "sys_code": "200",
            "lang": "_en_US",
            "ps_key": ps_key,
            "points": ",".join(p.vendor_field for p in self.points),
            "minute_interval": str(self.limits.interval_s // 60),
            "start_time_stamp": local_stamp(start_ts, timezone),
            "end_time_stamp": local_stamp(end_ts - 1, timezone),
        }
        payload = await self._call(
            "POST", DATA_PATH, calls=result.calls, json=body,
            count=lambda p: count_point_data(p.get("result_data"), ps_key),
        )
        records, rejected, _empty = parse_point_data(payload.get("result_data"), ps_key, timezone, self.points)
        result.records.extend(records)
        result.rejected.extend(rejected)

    async def _ps_list_page(self, page: int, calls: list[CallLog]) -> dict:
        body = {"sys_code": "900", "lang": "_en_US", "curPage": page, "size": self.ps_list_page_size}

        def count(payload: Any) -> int:
            data = payload.get("result_data")
            if not isinstance(data, dict) or not isinstance(data.get("pageList"), list):
                raise VendorUnavailable("getPsList answer without pageList")
            return len(data["pageList"])

        payload = await self._call("POST", PS_LIST_PATH, calls=calls, json=body, count=count)
        return payload["result_data"]

    async def list_plants(self) -> list[VendorPlant]:
        calls: list[CallLog] = []
        plants: list[VendorPlant] = []
        page = 1
        while True:
            data = await self._ps_list_page(page, calls)
            plants.extend(parse_ps_list_item(item) for item in data["pageList"])
            total = int(to_number(data.get("rowCount", 0), "rowCount"))
            if not data["pageList"] or len(plants) >= total:
                return plants
            page += 1

"""Solarman cloud OpenAPI (``globalapi.solarmanpv.com``).

No real capture of this API exists in ``vendor-fixtures``; the shapes follow seed 000's
example record and the third-party notes in ``vendor-fixtures/SOURCES.md``:

* **Token:** ``POST /account/v1.0/token?appId=<appId>`` with ``appSecret``, ``email``
  (or ``username``) and ``password`` as lowercase hex SHA-256. The answer carries
  ``access_token`` and ``expires_in`` (a string). Errors come back as
  ``{"success": false, "code": "...", "msg": "..."}``.
* **History:** ``POST /station/v1.0/history`` with ``Authorization: Bearer <token>``,
  body ``{"stationId", "timeType": 1, "startTimestamp", "endTimestamp", "page", "size"}``
  (epoch seconds, both ends inclusive), answer ``{"total", "stationDataItems": [...]}``.
  At most 7 days per call and 500 records per page (our emulation's limits; the real
  values are unverified).
* **Station list:** ``POST /station/v1.0/list`` with ``{"page", "size"}``, answer
  ``{"total", "stationList": [...]}``.

Attribute mapping (seed 000, "Solarman Mapping"); values kept in kWh / kW, the MWh
view is the store's business:

==============================  ===============  =========  ===============
vendor field                    point            vendor     canonical
==============================  ===============  =========  ===============
``lastUpdateTime``              ``ts``           unix s     int epoch s
``generationUploadTotalOffset`` ``energy_total`` kWh        kWh
``generationPower``             ``power``        W          kW (/1000)
``generationValue``             ``energy_today`` kWh        kWh
whole record                    ``raw``
==============================  ===============  =========  ===============

Credentials: ``app_id``, ``app_secret``, ``email`` (or ``username``) and ``password``
(plain; hashed here) or ``password_sha256``.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx

from wattline.domain.metrics import MetricType

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

TIME_FIELD = "lastUpdateTime"

# Error codes of the emulated API (the real codes are unverified).
AUTH_CODES = {"2101003", "2101019"}  # bad appId/appSecret, bad account or password
TOKEN_CODES = {"2101000"}  # token expired or revoked (sent with HTTP 401)

POINTS = [
    PointSpec(ENERGY_TOTAL, MetricType.COUNTER, "generationUploadTotalOffset", "kWh"),
    PointSpec(POWER, MetricType.POWER, "generationPower", "W"),
    PointSpec(ENERGY_TODAY, MetricType.COUNTER, "generationValue", "kWh", daily_reset=True),
]

_MAPPING = [(p.key, p.vendor_field, p.factor) for p in POINTS]


def parse_station_item(item: Any) -> VendorRecord:
    """One ``stationDataItems`` entry as a record; raises BadValue naming the bad field."""
    if not isinstance(item, dict):
        raise BadValue(f"record is a {type(item).__name__}, not an object")
    for field in (TIME_FIELD, *(p.vendor_field for p in POINTS)):
        if field not in item:
            raise BadValue(f"{field} is missing")
    ts = to_number(item[TIME_FIELD], TIME_FIELD)
    if ts < 0:
        raise BadValue(f"{TIME_FIELD} is negative: {item[TIME_FIELD]!r}")
    values = {key: to_number(item[field], field) * factor for key, field, factor in _MAPPING}
    return VendorRecord(ts=int(ts), values=values, raw=item)


def _count_items(payload: Any) -> int:
    """Validate a history page's shape (inside the retried attempt) and count its items."""
    items = payload.get("stationDataItems") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise VendorUnavailable("history page without a stationDataItems list")
    return len(items)


def _count_stations(payload: Any) -> int:
    items = payload.get("stationList") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise VendorUnavailable("station list page without a stationList list")
    return len(items)


class SolarmanAdapter(VendorAdapter):
    """Solarman station history at 15-minute frames."""

    vendor_type = "solarman"
    default_base_url = "https://globalapi.solarmanpv.com"
    # The real rate limits are not published in our sources: conservative values.
    limits = VendorLimits(
        max_range_s=7 * 86400,
        page_size=500,
        interval_s=900,
        calls_per_minute=60,
        calls_per_day=10_000,
        calls_per_month=None,
    )
    points = POINTS

    # -- auth -----------------------------------------------------------------------

    def _password_hash(self) -> str:
        hashed = self._credentials.get("password_sha256")
        if hashed:
            return str(hashed).lower()
        password = self._credential("password")
        return hashlib.sha256(password.encode()).hexdigest()

    async def _login(self, calls: list[CallLog]) -> None:
        app_id = self._credential("app_id", "appId")
        body: dict[str, Any] = {
            "appSecret": self._credential("app_secret", "appSecret"),
            "password": self._password_hash(),
        }
        if self._credentials.get("email"):
            body["email"] = str(self._credentials["email"])
        else:
            body["username"] = self._credential("username", "email")
        payload = await self._send(
            "POST", "/account/v1.0/token", calls=calls, auth=False,
            params={"appId": app_id, "language": "en"}, json=body,
        )
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not token:
            raise VendorAuthError("token response without access_token")
        try:
            ttl = to_number(payload.get("expires_in", 3600), "expires_in")
        except BadValue:
            ttl = 3600.0
        self._token = str(token)
        self._token_expires_at = time.time() + ttl

    def _authorize(self, headers: dict[str, str], body: dict[str, Any] | None) -> None:
        headers["Authorization"] = f"Bearer {self._token}"

    def _check(self, response: httpx.Response) -> Any:
        self._check_http(response)
        payload = self._json(response)
        code = str(payload.get("code")) if isinstance(payload, dict) else None
        msg = str(payload.get("msg") or "") if isinstance(payload, dict) else ""
        if response.status_code == 401 or code in TOKEN_CODES:
            raise TokenInvalid(msg or "token refused", code=code)
        if response.status_code >= 400:
            raise VendorRequestError(f"HTTP {response.status_code}: {msg}".strip(), code=code)
        if not isinstance(payload, dict):
            raise VendorUnavailable("response is not a JSON object")
        if payload.get("success") is False:
            if code in AUTH_CODES:
                raise VendorAuthError(msg or "credentials refused", code=code)
            raise VendorRequestError(msg or "request refused", code=code)
        return payload

    # -- data -----------------------------------------------------------------------

    @staticmethod
    def _station_id(vendor_plant_id: str) -> int | str:
        return int(vendor_plant_id) if vendor_plant_id.isdigit() else vendor_plant_id

    async def _fetch_window(
        self, vendor_plant_id: str, start_ts: int, end_ts: int, timezone: str, result: FetchResult
    ) -> None:
        size = self.limits.page_size or 500
        page = 1
        while True:
            body = {
                "stationId": self._station_id(vendor_plant_id),
                "timeType": 1,  # frame data (one record per reporting interval)
                "startTimestamp": start_ts,
                "endTimestamp": end_ts - 1,  # the API's end is inclusive
                "page": page,
                "size": size,
            }
            payload = await self._call(
                "POST", "/station/v1.0/history", calls=result.calls,
                params={"language": "en"}, json=body, count=_count_items,
            )
            items = payload["stationDataItems"]
            for item in items:
                try:
                    result.records.append(parse_station_item(item))
                except BadValue as exc:
                    result.rejected.append(RejectedRecord(raw=item, reason=str(exc)))
            total = int(to_number(payload.get("total", 0), "total"))
            if not items or page * size >= total:
                return
            page += 1

    async def list_plants(self) -> list[VendorPlant]:
        calls: list[CallLog] = []
        plants: list[VendorPlant] = []
        page, size = 1, 100
        while True:
            payload = await self._call(
                "POST", "/station/v1.0/list", calls=calls,
                params={"language": "en"}, json={"page": page, "size": size}, count=_count_stations,
            )
            for item in payload["stationList"]:
                plants.append(_station_to_plant(item))
            if not payload["stationList"] or page * size >= int(payload.get("total") or 0):
                return plants
            page += 1


def _opt_number(item: dict, field: str) -> float | None:
    try:
        return to_number(item.get(field), field)
    except BadValue:
        return None


def _station_to_plant(item: dict) -> VendorPlant:
    start = _opt_number(item, "startOperatingTime")
    return VendorPlant(
        vendor_plant_id=str(item.get("id")),
        name=str(item.get("name") or ""),
        capacity_kw=_opt_number(item, "installedCapacity"),
        timezone=item.get("regionTimezone") or None,
        latitude=_opt_number(item, "locationLat"),
        longitude=_opt_number(item, "locationLng"),
        start_operating_ts=int(start) if start is not None else None,
        raw=item,
    )

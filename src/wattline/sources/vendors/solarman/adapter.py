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

Attribute mapping: :mod:`.mapping` (values kept in kWh / kW, the MWh view is the
store's business).

Credentials: :class:`.credentials.SolarmanCredentials`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from wattline import clock

from ..adapter import VendorAdapter
from ..errors import VendorAuthError, VendorRequestError, VendorUnavailable
from ..http import TokenInvalid
from ..models import CallLog, FetchResult, RejectedRecord, VendorLimits, VendorPlant
from ..pagination import all_pages
from ..parsing import BadValue, to_number
from .credentials import SolarmanCredentials

# Error codes of the emulated API (the real codes are unverified).
AUTH_CODES = {"2101003", "2101019"}  # bad appId/appSecret, bad account or password
TOKEN_CODES = {"2101000"}  # token expired or revoked (sent with HTTP 401)
from .mapping import POINTS, count_items, count_stations, parse_station_item, station_to_plant


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
    credentials_model = SolarmanCredentials
    credentials: SolarmanCredentials

    # -- auth -----------------------------------------------------------------------

    def _password_hash(self) -> str:
        c = self.credentials
        if c.password_sha256 is not None:
            return c.password_sha256.get_secret_value().lower()
        assert c.password is not None  # the model requires one of the two
        return hashlib.sha256(c.password.get_secret_value().encode()).hexdigest()

    async def _login(self, calls: list[CallLog]) -> None:
        c = self.credentials
        app_id = c.app_id
        body: dict[str, Any] = {"appSecret": c.app_secret.get_secret_value(), "password": self._password_hash()}
        if c.email:
            body["email"] = c.email
        else:
            body["username"] = c.username
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
        self._token_expires_at = clock.now() + ttl

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

        async def page(number: int) -> tuple[list, int]:
            body = {
                "stationId": self._station_id(vendor_plant_id),
                "timeType": 1,  # frame data (one record per reporting interval)
                "startTimestamp": start_ts,
                "endTimestamp": end_ts - 1,  # the API's end is inclusive
                "page": number,
                "size": size,
            }
            payload = await self._call(
                "POST", "/station/v1.0/history", calls=result.calls,
                params={"language": "en"}, json=body, count=count_items,
            )
            items = payload["stationDataItems"]
            for item in items:
                try:
                    result.records.append(parse_station_item(item))
                except BadValue as exc:
                    result.rejected.append(RejectedRecord(raw=item, reason=str(exc)))
            return items, int(to_number(payload.get("total", 0), "total"))

        await all_pages(page)

    async def list_plants(self) -> list[VendorPlant]:
        calls: list[CallLog] = []

        async def page(number: int) -> tuple[list, int]:
            payload = await self._call(
                "POST", "/station/v1.0/list", calls=calls,
                params={"language": "en"}, json={"page": number, "size": 100}, count=count_stations,
            )
            return payload["stationList"], int(payload.get("total") or 0)

        return [station_to_plant(item) for item in await all_pages(page)]

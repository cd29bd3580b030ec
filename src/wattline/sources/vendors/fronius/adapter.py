"""Fronius local Solar API v1 polling (a site on the same network as the inverter).

The alternative to push for a site whose Datamanager / GEN24 web server Wattline can
reach: ``base_url`` is the device (``http://<host>``), the vendor plant id is the
site id (the same one its pusher would send). No authentication (read-only LAN API).

* latest: ``GET /solar_api/v1/GetPowerFlowRealtimeData.fcgi`` -> one record;
* history: ``GET /solar_api/v1/GetArchiveData.cgi?Scope=System&StartDate=DD.MM.YYYY
  &EndDate=DD.MM.YYYY&Channel=EnergyReal_WAC_Plus_Absolute&Channel=..._Minus_Absolute``,
  one **local day** per call (dates are the device's local dates), 5-minute meter
  counters;
* connection test: ``GET /solar_api/GetAPIVersion.cgi``.

Units and signs: :mod:`.mapping`. The push path: :mod:`.push`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from wattline.domain.timeutil import local_date, local_midnight, zone

from ..adapter import VendorAdapter
from ..errors import VendorRequestError, VendorUnavailable
from ..models import CallLog, FetchResult, VendorLimits
from .credentials import FroniusCredentials
from .mapping import (
    API_VERSION_PATH,
    ARCHIVE_CHANNELS,
    ARCHIVE_PATH,
    POWER_FLOW_PATH,
    check_envelope,
    count_archive,
    parse_archive,
    parse_power_flow,
)
from .points import POINTS


class FroniusAdapter(VendorAdapter):
    """A Fronius inverter's local Solar API (and the registry entry of push sites)."""

    vendor_type = "fronius"
    default_base_url = "http://fronius.local"  # the device on the site's LAN
    credentials_model = FroniusCredentials
    points = POINTS
    # one local day per archive call, 5-minute archive; the device sets no call quota
    limits = VendorLimits(max_range_s=86400, page_size=None, interval_s=300, calls_per_minute=None)

    async def _login(self, calls: list[CallLog]) -> None:
        self._token, self._token_expires_at = "local", None  # nothing to log in to

    def _authorize(self, headers: dict[str, str], body: dict[str, Any] | None) -> None:
        return None

    async def test_connection(self) -> None:
        """The device answers its API version (1)."""
        payload = await self._call("GET", API_VERSION_PATH, calls=[])
        if payload.get("APIVersion") != 1:
            raise VendorRequestError(f"unsupported Solar API version {payload.get('APIVersion')!r}")

    def _check(self, response: httpx.Response) -> Any:
        # the envelope is checked by the parsers: GetAPIVersion answers without one
        self._check_http(response)
        if response.status_code == 404:
            raise VendorRequestError("HTTP 404: the device has no such Solar API endpoint")
        if response.status_code >= 400:
            raise VendorRequestError(f"HTTP {response.status_code}")
        payload = self._json(response)
        if not isinstance(payload, dict):
            raise VendorUnavailable("answer is not a JSON object")
        return payload

    def windows(self, start_ts: int, end_ts: int, timezone: str) -> list[tuple[int, int]]:
        """One window per local day of the device (23 or 25 hours on DST days)."""
        out: list[tuple[int, int]] = []
        a = start_ts
        while a < end_ts:
            day = local_date(a, timezone)
            b = min(end_ts, local_midnight(day + timedelta(days=1), timezone))
            out.append((a, b))
            a = b
        return out

    async def _fetch_window(self, vendor_plant_id: str, start_ts: int, end_ts: int, timezone: str,
                            result: FetchResult) -> None:
        day = datetime.fromtimestamp(start_ts, zone(timezone)).strftime("%d.%m.%Y")
        params = {"Scope": "System", "StartDate": day, "EndDate": day, "Channel": list(ARCHIVE_CHANNELS)}
        payload = await self._call("GET", ARCHIVE_PATH, calls=result.calls, params=params, count=count_archive)
        records, rejected = parse_archive(payload)
        result.records.extend(records)
        result.rejected.extend(rejected)

    async def fetch_latest(self, vendor_plant_id: str, timezone: str, *, now_ts: int | None = None) -> FetchResult:
        """The device's power flow now: one record (or one rejected, with the reason)."""
        result = FetchResult()
        payload = await self._call("GET", POWER_FLOW_PATH, calls=result.calls, count=lambda p: 1)
        check_envelope(payload)
        result.records, result.rejected = parse_power_flow(payload)
        return result


__all__ = ["FroniusAdapter"]

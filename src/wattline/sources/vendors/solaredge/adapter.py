"""SolarEdge Monitoring API v1 (``https://monitoringapi.solaredge.com``).

Written against ``vendor-fixtures/solaredge-monitoring/`` and VENDOR-NOTES.md:

* **Auth:** the ``api_key`` query parameter on every call (no session). Call logs
  keep the path only, so the key never reaches a log, an error or a sync row.
* **Limits:** 300 requests a day per key and per site, 3 concurrent: declared in
  :attr:`SolarEdgeAdapter.limits` (the shared per-account limiter counts the day, a
  semaphore per limiter holds the fourth call). Over either, the API answers **429**,
  the real one without Retry-After; then the account backs off 15 minutes
  (``NO_RETRY_AFTER_S``, as field reports found it clears) instead of hammering.
* **History:** ``/site/{id}/energyDetails`` (Wh) and ``/site/{id}/powerDetails`` (W),
  15-minute slots, ``startTime``/``endTime`` in site-local time. Quarter-hour data is
  limited to about a month per call (28-day windows have been refused), so ranges are
  split into windows of at most 25 days: a backfill is a sequence of independent,
  idempotent 25-day windows and resumes at the first one not done.
* **Time zone:** ``/site/{id}/details`` -> ``location.timeZone``, read once a day per site
  in the process; all dates are naive site-local (DST rules: :mod:`.mapping`).
* **Now:** ``/site/{id}/overview`` (``lastUpdateTime``, W, lifetime Wh) and
  ``/site/{id}/currentPowerFlow`` (its own ``unit``; battery state of charge).
* **Errors** arrive as Tomcat HTML or JSON ``{message}``: 400 a bad parameter, 403 a
  refused key (or a site or range the key may not ask for), 429, 5xx.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import httpx

from wattline import clock

from ..adapter import VendorAdapter
from ..errors import VendorAuthError, VendorError, VendorRateLimited, VendorRequestError, VendorUnavailable
from ..http import retry_after_s
from ..models import CallLog, FetchResult, RejectedRecord, VendorLimits, VendorPlant, VendorRecord
from ..parsing import BadValue
from ..ratelimit import RateLimiter
from .credentials import SolarEdgeCredentials
from .mapping import (
    POINTS,
    count_meters,
    error_message,
    local_text,
    parse_details,
    parse_meters,
    parse_overview,
    parse_power_flow,
)

NO_RETRY_AFTER_S = 900.0  # a 429 without Retry-After: back off 15 minutes
ENERGY_METERS = "PRODUCTION,CONSUMPTION,SELFCONSUMPTION,FEEDIN,PURCHASED"
POWER_METERS = "PRODUCTION,CONSUMPTION,FEEDIN,PURCHASED"

ZONE_TTL_S = 86400.0
_ZONES: dict[tuple[str, str], tuple[str, float]] = {}  # (base URL, site) -> (zone, valid until)

# one semaphore per account limiter and event loop: every adapter of the account shares it
_in_flight: "weakref.WeakKeyDictionary[RateLimiter, dict[asyncio.AbstractEventLoop, asyncio.Semaphore]]" = (
    weakref.WeakKeyDictionary()
)


class SolarEdgeAdapter(VendorAdapter):
    """Quarter-hour energy and power of a SolarEdge site, and its live power flow."""

    vendor_type = "solaredge"
    default_base_url = "https://monitoringapi.solaredge.com"
    limits = VendorLimits(
        max_range_s=25 * 86400,
        page_size=None,
        interval_s=900,
        calls_per_minute=None,
        calls_per_day=300,
        calls_per_month=None,
        max_concurrent=3,
    )
    points = POINTS
    credentials_model = SolarEdgeCredentials
    credentials: SolarEdgeCredentials

    # -- auth and checks ---------------------------------------------------------------

    async def _login(self, calls: list[CallLog]) -> None:
        self._token = "api_key"  # nothing to obtain: the key goes on each call
        self._token_expires_at = None

    def _authorize(self, headers: dict[str, str], body: dict[str, Any] | None) -> None:
        pass  # the key is a query parameter, added by _get

    def _check(self, response: httpx.Response) -> Any:
        status = response.status_code
        if status == 429:
            wait = retry_after_s(response) if response.headers.get("retry-after") else NO_RETRY_AFTER_S
            raise VendorRateLimited(f"HTTP 429: {error_message(response)}", wait)
        if status >= 500:
            raise VendorUnavailable(f"HTTP {status}")
        if status >= 400:
            message = error_message(response)
            lower = message.lower()
            if status in (401, 403) and not any(w in lower for w in ("site", "time", "period", "range", "month")):
                raise VendorAuthError(f"api_key refused (HTTP {status}: {message})")
            raise VendorRequestError(f"HTTP {status}: {message}")
        return self._json(response)

    async def _attempt(self, *args: Any, **kw: Any) -> Any:
        """One HTTP attempt, at most ``limits.max_concurrent`` of the account at once."""
        async with self._concurrency():
            return await super()._attempt(*args, **kw)

    def _concurrency(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        per_loop = _in_flight.setdefault(self.limiter, {})
        sem = per_loop.get(loop)
        if sem is None:
            for old in [lp for lp in per_loop if lp.is_closed()]:
                del per_loop[old]
            sem = per_loop[loop] = asyncio.Semaphore(self.limits.max_concurrent or 1_000_000)
        return sem

    async def _get(self, path: str, calls: list[CallLog], params: dict[str, Any] | None = None,
                   count: Any = None) -> Any:
        query = {**(params or {}), "api_key": self.credentials.api_key.get_secret_value()}
        return await self._call("GET", path, calls=calls, params=query, count=count)

    # -- sites ---------------------------------------------------------------------------

    async def site_details(self, site_id: str, calls: list[CallLog]) -> VendorPlant:
        return parse_details(await self._get(f"/site/{site_id}/details", calls))

    async def site_zone(self, site_id: str, timezone: str, calls: list[CallLog]) -> str:
        """The site's own zone (details.location.timeZone), else ``timezone``.

        Read once a day per site and base URL in this process, whichever adapter asks:
        a job that builds an adapter per poll must not spend a third of the quota on it.
        """
        key = (self.base_url, site_id)
        cached = _ZONES.get(key)
        if cached is not None and clock.now() < cached[1]:
            return cached[0]
        plant = await self.site_details(site_id, calls)
        tz = plant.timezone or timezone
        if len(_ZONES) > 10_000:
            _ZONES.clear()
        _ZONES[key] = (tz, clock.now() + ZONE_TTL_S)
        return tz

    async def list_plants(self) -> list[VendorPlant]:
        payload = await self._get("/sites/list", [], params={"size": 100})
        sites = payload.get("sites", {}).get("site") if isinstance(payload, dict) else None
        if not isinstance(sites, list):
            raise VendorUnavailable("sites list without sites.site")
        return [parse_details(s) for s in sites]

    async def test_connection(self) -> None:
        """One ``/sites/list`` call: the key must really work."""
        calls: list[CallLog] = []
        try:
            await self._get("/sites/list", calls, params={"size": 1})
        except VendorError as exc:
            exc.calls = calls
            raise

    # -- history -------------------------------------------------------------------------

    async def _fetch_window(
        self, vendor_plant_id: str, start_ts: int, end_ts: int, timezone: str, result: FetchResult
    ) -> None:
        tz = await self.site_zone(vendor_plant_id, timezone, result.calls)
        # a record is stamped at its slot's end: the first slot starts 15 min before start_ts
        params = {"startTime": local_text(start_ts - 900, tz), "endTime": local_text(end_ts - 1, tz),
                  "timeUnit": "QUARTER_OF_AN_HOUR"}
        energy = await self._get(f"/site/{vendor_plant_id}/energyDetails", result.calls,
                                 params={**params, "meters": ENERGY_METERS}, count=count_meters)
        power = await self._get(f"/site/{vendor_plant_id}/powerDetails", result.calls,
                                params={"startTime": params["startTime"], "endTime": params["endTime"],
                                        "meters": POWER_METERS}, count=count_meters)
        records, rejected, _empty = parse_meters(energy, power, tz)
        result.records.extend(records)
        result.rejected.extend(rejected)

    async def fetch_latest(self, vendor_plant_id: str, timezone: str, *,
                           now_ts: int | None = None) -> FetchResult:
        """The site now: ``overview`` (time, lifetime energy) + ``currentPowerFlow``."""
        site = str(vendor_plant_id)
        result = FetchResult()
        try:
            tz = await self.site_zone(site, timezone, result.calls)
            overview = await self._get(f"/site/{site}/overview", result.calls, count=lambda p: 1)
            flow = await self._get(f"/site/{site}/currentPowerFlow", result.calls, count=lambda p: 1)
        except VendorError as exc:
            exc.calls = list(result.calls)
            raise
        raw = {"overview": overview, "currentPowerFlow": flow}
        try:
            ts, values = parse_overview(overview, tz)
            values.update(parse_power_flow(flow))  # the flow's signed powers win
        except BadValue as exc:
            result.rejected.append(RejectedRecord(raw=raw, reason=str(exc)))
            return result
        result.records.append(VendorRecord(ts=ts, values=values, raw=raw))
        return result

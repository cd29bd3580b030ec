"""Amber Electric public API v1 (``api.amber.com.au/v1``).

From the spec (JP-Ellis/amber-api ``openapi/2.0.0.yml``) and the captures in
``vendor-fixtures/amber-electric/`` (see SOURCES.md):

* **Auth:** ``Authorization: Bearer <api_key>``; 401 = key missing or invalid (there is
  no session: a 401 is final, not a re-login).
* ``GET /sites`` → the account's sites; ``GET /sites/{id}/usage?startDate=&endDate=``
  and ``GET /sites/{id}/prices?startDate=&endDate=&resolution=30`` → flat arrays of
  30-minute intervals; ``GET /sites/{id}/prices/current`` → the current interval per
  channel. Dates are NEM dates (UTC+10), both inclusive, at most **7 days** apart
  (422 otherwise); usage goes back 90 days. Empty ``[]`` answers are normal (the day's
  usage is not there yet).
* **Rate limit:** 50 requests per 5 minutes per key (Amber's developer docs; the
  spec only names the ``RateLimit-Limit/-Remaining/-Reset/-Policy`` headers). Beyond
  it: 429. The adapter paces itself at 10 calls per minute (never more than 50 in any
  5 minutes), stops early when ``RateLimit-Remaining`` reaches 0, and waits out a 429's
  ``Retry-After`` (or ``RateLimit-Reset``).

Units and the point table: :mod:`.mapping`. Credentials: :class:`.credentials.AmberCredentials`.
"""

from __future__ import annotations

from typing import Any

import httpx

from wattline import clock

from ..adapter import VendorAdapter
from ..errors import VendorAuthError, VendorRateLimited, VendorRequestError, VendorUnavailable
from ..http import retry_after_s
from ..models import CallLog, FetchResult, RejectedRecord, VendorLimits, VendorPlant
from ..parsing import BadValue, to_number
from .credentials import AmberCredentials
from .mapping import (
    POINTS,
    PriceInterval,
    combine,
    count_intervals,
    general_price_intervals,
    nem_date,
    nem_midnight,
    parse_prices,
    parse_usage,
    site_to_plant,
)

DAY = 86400
MAX_DAYS = 7  # startDate..endDate, both inclusive, at most 7 days apart
USAGE_DAYS_BACK = 90  # older usage is not served (422): not asked for
WINDOW_DAYS = MAX_DAYS - 1  # a window's usage call also asks for the day before


def _reset_s(response: httpx.Response) -> float:
    """Seconds until the rate-limit window resets: Retry-After, else RateLimit-Reset."""
    wait = retry_after_s(response)
    if wait > 0:
        return wait
    try:
        return max(to_number(response.headers.get("ratelimit-reset"), "RateLimit-Reset"), 0.0)
    except BadValue:
        return 0.0


class AmberAdapter(VendorAdapter):
    """Amber usage (30-minute, billable or estimated) and prices (general, feed-in)."""

    vendor_type = "amber"
    default_base_url = "https://api.amber.com.au/v1"
    limits = VendorLimits(
        max_range_s=WINDOW_DAYS * DAY,
        page_size=None,  # no pagination: one array per call
        interval_s=1800,
        calls_per_minute=10,  # 50 per 5 minutes, paced
        calls_per_day=None,
        calls_per_month=None,
    )
    points = POINTS
    credentials_model = AmberCredentials
    credentials: AmberCredentials
    poll_interval_s = 300  # a hint for the poller: prices change every 5 minutes at most

    # -- auth -----------------------------------------------------------------------

    async def _login(self, calls: list[CallLog]) -> None:
        self._token = self.credentials.api_key.get_secret_value()  # a key, not a session
        self._token_expires_at = None

    def _authorize(self, headers: dict[str, str], body: dict[str, Any] | None) -> None:
        headers["Authorization"] = f"Bearer {self._token}"

    def _check(self, response: httpx.Response) -> Any:
        status = response.status_code
        if response.headers.get("ratelimit-remaining") == "0" and status < 400:
            self.limiter.block_for(_reset_s(response))  # the window is used up: wait before the next call
        if status == 429:
            raise VendorRateLimited("HTTP 429 Too Many Requests", _reset_s(response))
        if status >= 500:
            raise VendorUnavailable(f"HTTP {status}")
        if status in (401, 403):
            raise VendorAuthError(f"API key refused (HTTP {status})")
        if status >= 400:
            payload = self._json_or_none(response)
            msg = payload.get("message") if isinstance(payload, dict) else None
            raise VendorRequestError(f"HTTP {status}: {msg or 'request refused'}")
        return self._json(response)

    @staticmethod
    def _json_or_none(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return None

    async def test_connection(self) -> None:
        """The key must really work: list the sites."""
        await super().test_connection()
        await self.list_plants()

    # -- data -----------------------------------------------------------------------

    def windows(self, start_ts: int, end_ts: int, timezone: str) -> list[tuple[int, int]]:
        """NEM-day-aligned windows of at most 6 NEM days: with the day before (for the
        usage interval ending at the window's start) a call asks for at most 7 dates."""
        out: list[tuple[int, int]] = []
        a = start_ts
        while a < end_ts:
            b = min(end_ts, nem_midnight(a) + WINDOW_DAYS * DAY)
            out.append((a, b))
            a = b
        return out

    @staticmethod
    def _dates(first_ts: int, last_ts: int) -> dict[str, str]:
        """startDate / endDate (both inclusive) of the NEM days holding the two instants."""
        return {"startDate": nem_date(first_ts), "endDate": nem_date(last_ts)}

    async def _fetch_window(
        self, vendor_plant_id: str, start_ts: int, end_ts: int, timezone: str, result: FetchResult
    ) -> None:
        site = f"/sites/{vendor_plant_id}"
        used, rejected = [], []
        # usage records sit at their interval's end and belong to the NEM date before it;
        # usage exists for the last 90 NEM days only: a backfill from further back gets
        # the prices of those days and no usage, instead of a 422 that would stop it
        oldest = nem_midnight(clock.now_s()) - USAGE_DAYS_BACK * DAY
        if end_ts > oldest:
            first = max(start_ts - 1, oldest)
            usage = await self._call("GET", f"{site}/usage", calls=result.calls,
                                     params=self._dates(first, end_ts - 2), count=count_intervals)
            used, rejected = parse_usage(usage)
        result.rejected.extend(rejected)
        prices = await self._call("GET", f"{site}/prices", calls=result.calls,
                                  params={**self._dates(start_ts, end_ts - 1), "resolution": 30},
                                  count=count_intervals)
        priced, rejected = parse_prices(prices)
        result.rejected.extend(rejected)
        # each window keeps its own range, so neighbouring windows never hold the same instant
        result.records.extend(r for r in combine(used, priced) if start_ts <= r.ts < end_ts)

    async def fetch_latest(self, vendor_plant_id: str, timezone: str, *, now_ts: int | None = None) -> FetchResult:
        """The current interval's prices (one call): what a 5-minute poll reads."""
        result = FetchResult()
        payload = await self._call("GET", f"/sites/{vendor_plant_id}/prices/current", calls=result.calls,
                                   params={"resolution": 30}, count=count_intervals)
        result.records, result.rejected = parse_prices(payload)
        result.records = result.records[-1:]
        return result

    async def fetch_general_prices(self, vendor_plant_id: str, start_ts: int,
                                   end_ts: int) -> tuple[list[PriceInterval], list[RejectedRecord], list[CallLog]]:
        """General-channel price intervals starting in ``[start_ts, end_ts)`` (for cost versions)."""
        calls: list[CallLog] = []
        items: list[Any] = []
        for a, b in self.windows(int(start_ts), int(end_ts), "UTC"):
            items.extend(await self._call("GET", f"/sites/{vendor_plant_id}/prices", calls=calls,
                                          params={**self._dates(a, b - 1), "resolution": 30},
                                          count=count_intervals))
        intervals, rejected = general_price_intervals(items)
        return [p for p in intervals if start_ts <= p.start_ts < end_ts], rejected, calls

    async def list_plants(self) -> list[VendorPlant]:
        payload = await self._call("GET", "/sites", calls=[], count=count_intervals)
        return [site_to_plant(item) for item in payload if isinstance(item, dict)]

"""What every vendor adapter is: the thin protocol the jobs and the CLI rely on.

An adapter declares

* ``points``: the :class:`VendorPointSpec` s it reports (vendor field, unit, point key),
* ``limits``: the :class:`VendorLimits` of an account (range per call, page size,
  call quotas),
* ``credentials_model``: a pydantic model of the account's credentials (unknown or
  missing keys are refused when the account is added, and again when an adapter is
  built from stored credentials),

and implements ``test_connection()``, ``fetch_history(...)`` and ``fetch_latest(...)``
on top of :class:`~wattline.sources.vendors.http.VendorHttpClient`, which does the
HTTP work (auth, retries, limiter, call log).

``fetch_history`` returns normalized records (canonical units, UTC epoch seconds), each
with the vendor's untouched raw record, the records it had to reject (with the
reason), and a log line per HTTP attempt. When retries are used up the error
propagates carrying ``calls`` and ``partial``; a malformed *record* is never fatal.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar, Mapping


from wattline import clock
from wattline.domain.timeutil import zone

from .credentials import VendorCredentials, validate_credentials
from .errors import VendorError
from .http import VendorHttpClient
from .models import CallLog, FetchResult, RejectedRecord, VendorLimits, VendorPlant, VendorPointSpec, VendorRecord
from .pagination import split_range
from .ratelimit import RateLimiter


class VendorAdapter(VendorHttpClient):
    """Pulls telemetry from one vendor account.

    Subclasses set ``vendor_type``, ``limits``, ``points``, ``credentials_model`` and
    ``default_base_url``, implement the HTTP hooks (``_login``, ``_authorize``,
    ``_check``) and one history window (``_fetch_window``).

    ``credentials`` is a mapping (as stored) or an instance of ``credentials_model``;
    a mapping the model refuses raises :class:`InvalidCredentials` here.
    """

    limits: ClassVar[VendorLimits]
    points: ClassVar[list[VendorPointSpec]]
    credentials_model: ClassVar[type[VendorCredentials]]
    default_base_url: ClassVar[str]
    # how often minute polling (jobs/poll.py) asks for the latest values, seconds
    poll_interval_s: ClassVar[int] = 60

    def __init__(self, base_url: str | None, credentials: Mapping[str, Any] | VendorCredentials, *,
                 limiter: RateLimiter | None = None, **http_options: Any) -> None:
        self.credentials = validate_credentials(self.vendor_type, self.credentials_model, credentials)
        super().__init__(base_url or self.default_base_url,
                         limiter=limiter if limiter is not None else RateLimiter.from_limits(self.limits),
                         **http_options)

    # -- the protocol ---------------------------------------------------------------

    async def test_connection(self) -> None:
        """Log in with the credentials; raises :class:`VendorAuthError` if refused."""
        calls: list[CallLog] = []
        try:
            await self.login(calls)
        except VendorError as exc:
            exc.calls = calls
            raise

    async def fetch_history(self, vendor_plant_id: str, start_ts: int, end_ts: int,
                            timezone: str) -> FetchResult:
        """Telemetry of ``vendor_plant_id`` for ``[start_ts, end_ts)`` (UTC epoch s).

        ``timezone`` is the plant's IANA zone (vendors that speak local time need it).
        Records come back sorted, one per timestamp, values in canonical units.
        Raises :class:`VendorAuthError`, :class:`QuotaExhausted`, or, when retries are
        used up, :class:`VendorUnavailable` / :class:`VendorRateLimited`; the error
        carries ``calls`` and ``partial`` (records fetched before it).
        """
        start_ts, end_ts = int(start_ts), int(end_ts)
        if end_ts <= start_ts:
            return FetchResult()
        zone(timezone)  # fail early on an unknown zone
        result = FetchResult()
        try:
            for a, b in self.windows(start_ts, end_ts, timezone):
                await self._fetch_window(str(vendor_plant_id), a, b, timezone, result)
        except VendorError as exc:
            exc.calls = list(result.calls)
            exc.partial = self._finish(result, start_ts, end_ts)
            raise
        return self._finish(result, start_ts, end_ts)

    async def fetch_latest(self, vendor_plant_id: str, timezone: str, *,
                           now_ts: int | None = None) -> FetchResult:
        """The newest record of the last two reporting intervals (empty if none).

        ``now_ts`` (UTC epoch s) defaults to :func:`wattline.clock.now_s`. Vendors with
        a real-time endpoint override this; the default asks the history.
        """
        now_ts = clock.now_s() if now_ts is None else int(now_ts)
        got = await self.fetch_history(vendor_plant_id, now_ts - 2 * self.limits.interval_s, now_ts + 1, timezone)
        return FetchResult(records=got.records[-1:], rejected=got.rejected, calls=got.calls)

    async def list_plants(self) -> list[VendorPlant]:
        """Plants visible to the account (following pagination)."""
        raise NotImplementedError(f"{self.vendor_type} adapter cannot list plants")

    # -- for subclasses ---------------------------------------------------------------

    def windows(self, start_ts: int, end_ts: int, timezone: str) -> list[tuple[int, int]]:
        """Split ``[start_ts, end_ts)`` into windows no longer than ``limits.max_range_s``."""
        return split_range(start_ts, end_ts, self.limits.max_range_s)

    @abstractmethod
    async def _fetch_window(
        self, vendor_plant_id: str, start_ts: int, end_ts: int, timezone: str, result: FetchResult
    ) -> None:
        """Fetch one window (within the range limit), all pages, into ``result``."""

    @staticmethod
    def _finish(result: FetchResult, start_ts: int, end_ts: int) -> FetchResult:
        """Keep records inside ``[start, end)``, sorted, one per timestamp.

        Records outside the range belong to a neighbouring window and are dropped
        (vendors answer whole days or inclusive ranges). A second record for the same
        timestamp with different values is rejected, not silently overwritten.
        """
        by_ts: dict[int, VendorRecord] = {}
        rejected = list(result.rejected)
        for rec in sorted(result.records, key=lambda r: r.ts):
            if not start_ts <= rec.ts < end_ts:
                continue
            kept = by_ts.get(rec.ts)
            if kept is None:
                by_ts[rec.ts] = rec
            elif kept.values != rec.values:
                rejected.append(RejectedRecord(rec.raw, f"conflicting duplicate for ts {rec.ts}"))
        return FetchResult(records=list(by_ts.values()), rejected=rejected, calls=list(result.calls))


__all__ = ["VendorAdapter"]

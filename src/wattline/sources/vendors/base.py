"""The vendor adapter interface, and the HTTP machinery every adapter shares.

An adapter fetches a plant's telemetry for ``[start_ts, end_ts)`` and returns
normalized records (canonical units, UTC epoch seconds) each with the vendor's
untouched raw record, the records it had to reject (with the reason), and a log line
per HTTP attempt. It splits the range into the vendor's largest range per call and
follows pagination.

Failure recovery (seed 000, "Failure Recovery"): a failed call is retried at once,
then after 5, 15 and 30 s (``retry_waits_s``), honouring ``Retry-After`` on 429. Only
unavailability (5xx, timeouts, connection errors, unreadable bodies) and 429 are
retried. When the retries are used up the error propagates, carrying ``calls`` and
``partial``; the caller skips the plant and logs. A malformed *record* is never fatal:
it goes to ``FetchResult.rejected`` with its raw data.

Every call first takes a slot from the account's :class:`RateLimiter` (shared by
backfill, sync and polling); a used-up quota raises :class:`QuotaExhausted` at once.

Credentials live only in ``self._credentials``; no log line, error or ``repr`` shows
them or the session token, and call logs record the URL path without its query.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from abc import ABC, abstractmethod
from typing import Any, Awaitable, Callable, ClassVar, Mapping

import httpx
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from wattline.domain.timeutil import zone

from .errors import (
    VendorAuthError,
    VendorError,
    VendorRateLimited,
    VendorUnavailable,
)
from .models import (
    CallLog,
    FetchResult,
    PointSpec,
    RejectedRecord,
    VendorLimits,
    VendorPlant,
    VendorRecord,
)
from .ratelimit import RateLimiter

log = structlog.get_logger(__name__)

DEFAULT_RETRY_WAITS_S: tuple[float, ...] = (0, 5, 15, 30)


class TokenInvalid(VendorAuthError):
    """The session token was refused (expired or revoked): log in again once, then retry."""


def _retry_after_s(response: httpx.Response) -> float:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); 0 when absent."""
    value = response.headers.get("retry-after")
    if not value:
        return 0.0
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(when.timestamp() - time.time(), 0.0)


class VendorAdapter(ABC):
    """Pulls telemetry from one vendor account.

    Subclasses set ``vendor_type``, ``limits``, ``points`` and ``default_base_url`` and
    implement login, request authorisation, response checking and one history window.

    ``retry_waits_s[i]`` is the wait before retry ``i + 1``: the default
    ``(0, 5, 15, 30)`` makes up to five attempts (the first call, an immediate retry,
    then retries after 5, 15 and 30 s). A 429 waits at least its Retry-After; one
    longer than ``max_retry_after_s`` is not waited out in-process but raised.
    ``sleep`` is injectable so tests need not really wait.
    """

    vendor_type: ClassVar[str]
    limits: ClassVar[VendorLimits]
    points: ClassVar[list[PointSpec]]
    default_base_url: ClassVar[str]
    max_retry_after_s: ClassVar[float] = 300.0

    def __init__(
        self,
        base_url: str,
        credentials: Mapping[str, Any],
        *,
        client: httpx.AsyncClient | None = None,
        timeout_s: float = 10.0,
        limiter: RateLimiter | None = None,
        retry_waits_s: tuple[float, ...] = DEFAULT_RETRY_WAITS_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if not retry_waits_s or any(w < 0 for w in retry_waits_s):
            raise ValueError("retry_waits_s needs at least one non-negative wait")
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self._credentials = dict(credentials)
        self._client = client
        self._owns_client = client is None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self.timeout_s = float(timeout_s)
        self._timeout = httpx.Timeout(self.timeout_s)
        self.limiter = limiter if limiter is not None else RateLimiter.from_limits(self.limits)
        self.retry_waits_s = tuple(float(w) for w in retry_waits_s)
        self._sleep = sleep
        self._token: str | None = None
        self._token_expires_at: float | None = None  # epoch s; None = until refused
        self._login_lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:  # never show credentials or the token
        return f"<{type(self).__name__} {self.base_url}>"

    # -- lifecycle --------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the HTTP client if the adapter created it."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> "VendorAdapter":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _http(self) -> httpx.AsyncClient:
        if not self._owns_client:
            assert self._client is not None
            return self._client
        loop = asyncio.get_running_loop()
        # an httpx client belongs to the loop it was first used on; jobs may use others
        if self._client is None or self._client.is_closed or self._client_loop is not loop:
            self._client = httpx.AsyncClient(timeout=self._timeout)
            self._client_loop = loop
        return self._client

    # -- public API -------------------------------------------------------------------

    async def fetch_telemetry(
        self, vendor_plant_id: str, start_ts: int, end_ts: int, timezone: str
    ) -> FetchResult:
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

    async def test_connection(self) -> None:
        """Log in with the credentials; raises :class:`VendorAuthError` if refused."""
        calls: list[CallLog] = []
        try:
            self._token = None
            await self._login(calls)
        except VendorError as exc:
            exc.calls = calls
            raise

    async def list_plants(self) -> list[VendorPlant]:
        """Plants visible to the account (following pagination)."""
        raise NotImplementedError(f"{self.vendor_type} adapter cannot list plants")

    def windows(self, start_ts: int, end_ts: int, timezone: str) -> list[tuple[int, int]]:
        """Split ``[start_ts, end_ts)`` into windows no longer than ``limits.max_range_s``."""
        step = self.limits.max_range_s
        return [(a, min(a + step, end_ts)) for a in range(start_ts, end_ts, step)]

    # -- vendor hooks -----------------------------------------------------------------

    @abstractmethod
    async def _fetch_window(
        self, vendor_plant_id: str, start_ts: int, end_ts: int, timezone: str, result: FetchResult
    ) -> None:
        """Fetch one window (within the range limit), all pages, into ``result``."""

    @abstractmethod
    async def _login(self, calls: list[CallLog]) -> None:
        """Obtain a session token (``self._token``); raise VendorAuthError if refused."""

    @abstractmethod
    def _authorize(self, headers: dict[str, str], body: dict[str, Any] | None) -> None:
        """Add the session token to an outgoing request (header or body)."""

    @abstractmethod
    def _check(self, response: httpx.Response) -> Any:
        """Decode a response and raise the right VendorError for the vendor's error shapes."""

    # -- helpers for subclasses ---------------------------------------------------------

    def _credential(self, *names: str) -> str:
        """The first non-empty credential among ``names``; VendorAuthError if none."""
        for name in names:
            value = self._credentials.get(name)
            if value not in (None, ""):
                return str(value)
        raise VendorAuthError(f"{self.vendor_type} credentials lack {' or '.join(names)}")

    @staticmethod
    def _check_http(response: httpx.Response) -> None:
        """Raise for the statuses every vendor shares: 429 and 5xx."""
        status = response.status_code
        if status == 429:
            raise VendorRateLimited("HTTP 429 Too Many Requests", _retry_after_s(response))
        if status >= 500:
            raise VendorUnavailable(f"HTTP {status}")

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise VendorUnavailable(
                f"unreadable body (HTTP {response.status_code}, {len(response.content)} bytes)"
            ) from None

    def _token_valid(self) -> bool:
        if self._token is None:
            return False
        if self._token_expires_at is None:
            return True
        return time.time() < self._token_expires_at - 60  # renew a minute early

    def _loop_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._login_lock is None or self._lock_loop is not loop:
            self._login_lock, self._lock_loop = asyncio.Lock(), loop
        return self._login_lock

    async def _ensure_token(self, calls: list[CallLog]) -> None:
        if self._token_valid():
            return
        async with self._loop_lock():  # concurrent fetches log in once
            if not self._token_valid():
                await self._login(calls)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        calls: list[CallLog],
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        count: Callable[[Any], int] | None = None,
    ) -> Any:
        """An authenticated call: retried, and re-logged-in once if the token is refused."""
        await self._ensure_token(calls)
        try:
            return await self._send(method, path, calls=calls, params=params, json=json, count=count)
        except TokenInvalid:
            log.info("vendor.relogin", vendor=self.vendor_type, path=path)
            self._token = None
            await self._ensure_token(calls)
            try:
                return await self._send(
                    method, path, calls=calls, params=params, json=json, count=count
                )
            except TokenInvalid as exc:
                raise VendorAuthError("token refused right after a fresh login", code=exc.code) from None

    async def _send(
        self,
        method: str,
        path: str,
        *,
        calls: list[CallLog],
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        count: Callable[[Any], int] | None = None,
        auth: bool = True,
    ) -> Any:
        """One logical call with the retry policy; returns the checked payload."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(len(self.retry_waits_s) + 1),
            wait=self._wait_before_retry,
            retry=retry_if_exception(self._is_retryable),
            reraise=True,
            sleep=self._sleep,
            before_sleep=self._log_retry,
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(
                    method, path, params, json, count, auth, calls, attempt.retry_state.attempt_number
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _is_retryable(self, exc: BaseException) -> bool:
        if isinstance(exc, VendorRateLimited):
            return exc.retry_after_s <= self.max_retry_after_s
        return isinstance(exc, VendorUnavailable)

    def _wait_before_retry(self, state: RetryCallState) -> float:
        waits = self.retry_waits_s
        wait = waits[min(state.attempt_number - 1, len(waits) - 1)]
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, VendorRateLimited):
            wait = max(wait, exc.retry_after_s)
        return wait

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "vendor.retry",
            vendor=self.vendor_type,
            attempt=state.attempt_number,
            wait_s=state.upcoming_sleep,
            error=str(exc),
        )

    async def _attempt(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        json: dict[str, Any] | None,
        count: Callable[[Any], int] | None,
        auth: bool,
        calls: list[CallLog],
        attempt: int,
    ) -> Any:
        await self.limiter.acquire()  # QuotaExhausted propagates: not worth retrying
        headers = {"Accept": "application/json"}
        body = dict(json) if json is not None else None
        if auth:
            self._authorize(headers, body)
        started_at = time.time()
        t0 = time.perf_counter()
        status: int | None = None
        records = 0
        error: str | None = None
        try:
            response = await self._http().request(
                method, self.base_url + path, params=params, json=body, headers=headers,
                timeout=self._timeout,
            )
            status = response.status_code
            payload = self._check(response)
            records = count(payload) if count is not None else 0
            return payload
        except httpx.TimeoutException as exc:
            error = f"timeout after {self.timeout_s:g} s ({type(exc).__name__})"
            raise VendorUnavailable(error) from None
        except httpx.TransportError as exc:  # message may hold the URL: keep only the type
            error = f"connection failed ({type(exc).__name__})"
            raise VendorUnavailable(error) from None
        except VendorError as exc:
            error = str(exc)
            if isinstance(exc, VendorRateLimited):
                self.limiter.block_for(exc.retry_after_s)
            raise
        finally:
            calls.append(
                CallLog(
                    method=method,
                    path=path,
                    status=status,
                    duration_ms=(time.perf_counter() - t0) * 1000.0,
                    records=records,
                    error=error,
                    attempt=attempt,
                    started_at=started_at,
                )
            )

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

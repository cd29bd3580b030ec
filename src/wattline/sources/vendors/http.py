"""The HTTP machinery every vendor adapter shares.

* **Auth:** the session token is obtained by the vendor's ``_login`` hook, renewed a
  minute before it expires, and obtained once more if the vendor refuses it
  (:class:`TokenInvalid`); concurrent calls log in once.
* **Retries** (seed 000, "Failure Recovery"): a failed call is retried at once, then
  after 5, 15 and 30 s (``retry_waits_s``), with tenacity; a 429 waits at least its
  ``Retry-After`` (delta-seconds or HTTP-date). Only unavailability (5xx, timeouts,
  connection errors, unreadable bodies) and 429 are retried.
* **Limits:** every attempt first takes a slot from the account's shared
  :class:`RateLimiter` (backfill, sync and polling share it); a used-up quota raises
  :class:`QuotaExhausted` at once, a 429 blocks the limiter for its Retry-After.
* **Call log:** one :class:`CallLog` per attempt (path without its query, status,
  duration, records, error), for the sync logs.

No log line, error or ``repr`` shows a credential or the session token.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import logging
import ssl
import time
from abc import ABC, abstractmethod
from typing import Any, Awaitable, Callable, ClassVar

import httpx
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from wattline import clock

from .errors import VendorAuthError, VendorError, VendorRateLimited, VendorUnavailable
from .models import CallLog
from .ratelimit import RateLimiter
from .transport import vendor_http_client

log = structlog.get_logger(__name__)
# httpx logs every request's full URL at INFO, and SolarEdge (api_key) and Enphase (key)
# take their keys in the query string: those lines would put a key in every log
logging.getLogger("httpx").setLevel(logging.WARNING)

DEFAULT_RETRY_WAITS_S: tuple[float, ...] = (0, 5, 15, 30)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The one TLS context of this process for vendor HTTP clients (httpx's default:
    certifi's CAs, or SSL_CERT_FILE / SSL_CERT_DIR as at first use). Loading the CA
    file costs 10-100 ms of CPU, and httpx does it for every new client: once per
    vendor account per poll tick without this (measured, bench/poll_tick.py)."""
    return httpx.create_ssl_context()


class TokenInvalid(VendorAuthError):
    """The session token was refused (expired or revoked): log in again once, then retry."""


def retry_after_s(response: httpx.Response) -> float:
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
    return max(when.timestamp() - clock.now(), 0.0)


def _retrieve_exception(future: asyncio.Future) -> None:
    """A login failure is its caller's to raise; when that caller was cancelled, taking
    it here keeps asyncio from logging "exception was never retrieved"."""
    if not future.cancelled():
        future.exception()


class VendorHttpClient(ABC):
    """Authenticated, retried, rate-limited calls to one vendor account's API.

    A vendor implements three hooks: ``_login`` (obtain ``self._token``),
    ``_authorize`` (put the token on a request) and ``_check`` (decode a response and
    raise the right :class:`VendorError` for the vendor's error shapes).

    ``retry_waits_s[i]`` is the wait before retry ``i + 1``: the default
    ``(0, 5, 15, 30)`` makes up to five attempts. A 429 waits at least its
    Retry-After; one longer than ``max_retry_after_s`` is raised, not waited out.
    ``sleep`` is injectable so tests need not really wait.
    """

    vendor_type: ClassVar[str]
    max_retry_after_s: ClassVar[float] = 300.0

    def __init__(
        self,
        base_url: str,
        *,
        limiter: RateLimiter,
        client: httpx.AsyncClient | None = None,
        timeout_s: float = 10.0,
        retry_waits_s: tuple[float, ...] = DEFAULT_RETRY_WAITS_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if not retry_waits_s or any(w < 0 for w in retry_waits_s):
            raise ValueError("retry_waits_s needs at least one non-negative wait")
        self.base_url = base_url.rstrip("/")
        self._client = client
        self._owns_client = client is None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self.timeout_s = float(timeout_s)
        self._timeout = httpx.Timeout(self.timeout_s)
        self.limiter = limiter
        self.retry_waits_s = tuple(float(w) for w in retry_waits_s)
        self._sleep = sleep
        self._token: str | None = None
        self._token_expires_at: float | None = None  # epoch s; None = until refused
        self._login_lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._pending_login: asyncio.Future | None = None  # a login no caller's cancel may stop

    def __repr__(self) -> str:  # never show credentials or the token
        return f"<{type(self).__name__} {self.base_url}>"

    # -- lifecycle --------------------------------------------------------------------

    async def aclose(self) -> None:
        """Let a login still in flight finish (its answer may hold a rotated refresh
        token), then close the HTTP client if this object created it."""
        await self.finish_login()
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self):
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
            self._client = vendor_http_client(timeout=self._timeout, ssl_context=tls_context())
            self._client_loop = loop
        return self._client

    # -- vendor hooks -----------------------------------------------------------------

    @abstractmethod
    async def _login(self, calls: list[CallLog]) -> None:
        """Obtain a session token (``self._token``); raise VendorAuthError if refused."""

    @abstractmethod
    def _authorize(self, headers: dict[str, str], body: dict[str, Any] | None) -> None:
        """Add the session token to an outgoing request (header or body)."""

    @abstractmethod
    def _check(self, response: httpx.Response) -> Any:
        """Decode a response and raise the right VendorError for the vendor's error shapes."""

    # -- helpers for the hooks ----------------------------------------------------------

    @staticmethod
    def _check_http(response: httpx.Response) -> None:
        """Raise for the statuses every vendor shares: 429 and 5xx."""
        status = response.status_code
        if status == 429:
            raise VendorRateLimited("HTTP 429 Too Many Requests", retry_after_s(response))
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

    # -- token ----------------------------------------------------------------------------

    def _token_valid(self) -> bool:
        if self._token is None:
            return False
        if self._token_expires_at is None:
            return True
        return clock.now() < self._token_expires_at - 60  # renew a minute early

    def _loop_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._login_lock is None or self._lock_loop is not loop:
            self._login_lock, self._lock_loop = asyncio.Lock(), loop
        return self._login_lock

    async def _ensure_token(self, calls: list[CallLog]) -> None:
        if self._token_valid():
            return
        async with self._loop_lock():  # concurrent fetches log in once
            pending = self._pending_login
            if pending is None or pending.done() or pending.get_loop() is not asyncio.get_running_loop():
                if self._token_valid():
                    return
                pending = self._pending_login = asyncio.ensure_future(self._login(calls))
                pending.add_done_callback(_retrieve_exception)
        # Awaited outside the lock: every caller that came while this login ran shares
        # its answer, a refusal included (25 systems of a refused account failed one
        # after the other, each trying again, past their timeouts). A caller that comes
        # after it ended tries afresh.
        # Shielded: a caller's timeout must not cancel a login half-way. The vendor
        # may already have spent the refresh token and rotated it; dropping its
        # answer would leave only the spent one (the account then needs the owner
        # to authorise again). The login completes and the next caller awaits it.
        await asyncio.shield(pending)

    async def finish_login(self) -> None:
        """Wait for a login whose caller was cancelled (it is bounded by its own call
        timeouts and retries), so closing a session never drops its answer."""
        pending = self._pending_login
        if pending is not None and not pending.done() and pending.get_loop() is asyncio.get_running_loop():
            await asyncio.wait({pending})

    async def login(self, calls: list[CallLog]) -> None:
        """Log in afresh (drops any token held); VendorAuthError if refused."""
        self._token = None
        await self._login(calls)

    # -- calls ----------------------------------------------------------------------------

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
        for fresh_login in (False, True):
            await self._ensure_token(calls)
            try:
                return await self._send(method, path, calls=calls, params=params, json=json, count=count)
            except TokenInvalid as exc:
                if fresh_login:
                    raise VendorAuthError("token refused right after a fresh login", code=exc.code) from None
                log.info("vendor.relogin", vendor=self.vendor_type, path=path)
                self._token = None
        raise AssertionError("unreachable")  # the second pass returns or raises

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
        data: dict[str, str] | None = None,
    ) -> Any:
        """One logical call with the retry policy; returns the checked payload.

        ``data`` is sent as an urlencoded form (a login form), ``json`` as JSON."""
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
                    method, path, params, json, count, auth, calls, attempt.retry_state.attempt_number,
                    data=data,
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
        *,
        data: dict[str, str] | None = None,
    ) -> Any:
        await self.limiter.acquire()  # QuotaExhausted propagates: not worth retrying
        headers = {"Accept": "application/json"}
        body = dict(json) if json is not None else None
        if auth:
            self._authorize(headers, body)
        started_at = clock.now()
        t0 = time.perf_counter()
        status: int | None = None
        records = 0
        error: str | None = None
        try:
            response = await self._http().request(
                method, self.base_url + path, params=params, json=body, data=data, headers=headers,
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

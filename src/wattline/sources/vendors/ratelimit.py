"""One rate limiter per vendor account, shared by backfill, sync and polling.

Two kinds of limit:

* **calls per minute**: a sliding 60-second window. ``acquire()`` waits (sleeps) until
  a slot is free, so callers are paced rather than refused.
* **calls per day / per month**: a quota. When it is used up, ``acquire()`` raises
  :class:`QuotaExhausted` with the UTC epoch second the quota refreshes (next UTC
  midnight / first of next month), so a backfill can pause and resume instead of
  blocking a worker for hours.

The limiter also honours a vendor's own back-off: after a 429 the adapter calls
:meth:`RateLimiter.block_until`, and every user of the account waits that long.

Safe for concurrent asyncio tasks and for threads: the bookkeeping runs under a
``threading.Lock`` that is never held across an ``await`` (an ``asyncio.Lock`` would be
bound to one event loop, and jobs may run on several). The clock and the sleep
function are injectable so tests run on simulated time.
"""

from __future__ import annotations

from wattline import clock as wall_clock

import asyncio
import threading
from collections import deque
from datetime import datetime, timezone
from typing import Awaitable, Callable

from .errors import QuotaExhausted
from .models import VendorLimits

WINDOW_S = 60.0

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


def _next_utc_midnight(now: float) -> int:
    d = datetime.fromtimestamp(now, timezone.utc).date()
    return int(datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp()) + 86400


def _next_month_start(now: float) -> int:
    d = datetime.fromtimestamp(now, timezone.utc)
    y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return int(datetime(y, m, 1, tzinfo=timezone.utc).timestamp())


def _day_key(now: float) -> tuple[int, int, int]:
    d = datetime.fromtimestamp(now, timezone.utc)
    return (d.year, d.month, d.day)


def _month_key(now: float) -> tuple[int, int]:
    d = datetime.fromtimestamp(now, timezone.utc)
    return (d.year, d.month)


class RateLimiter:
    """Paces and counts the calls of one vendor account (``None`` limits = unlimited)."""

    def __init__(
        self,
        calls_per_minute: int | None = None,
        calls_per_day: int | None = None,
        calls_per_month: int | None = None,
        *,
        clock: Clock = wall_clock.now,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        for name, value in (
            ("calls_per_minute", calls_per_minute),
            ("calls_per_day", calls_per_day),
            ("calls_per_month", calls_per_month),
        ):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        self.calls_per_minute = calls_per_minute
        self.calls_per_day = calls_per_day
        self.calls_per_month = calls_per_month
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._recent: deque[float] = deque()  # grant times inside the last minute
        self._day = _day_key(clock())
        self._month = _month_key(clock())
        self._calls_today = 0
        self._calls_month = 0
        self._blocked_until = 0.0

    @classmethod
    def from_limits(cls, limits: VendorLimits, **kw) -> "RateLimiter":
        return cls(limits.calls_per_minute, limits.calls_per_day, limits.calls_per_month, **kw)

    @classmethod
    def unlimited(cls, **kw) -> "RateLimiter":
        """No pacing and no quota: for the loopback emulator and benchmarks."""
        return cls(None, None, None, **kw)

    # -- bookkeeping (under the thread lock, never awaits) -------------------------

    def _roll(self, now: float) -> None:
        day, month = _day_key(now), _month_key(now)
        if day != self._day:
            self._day, self._calls_today = day, 0
        if month != self._month:
            self._month, self._calls_month = month, 0
        while self._recent and self._recent[0] <= now - WINDOW_S:
            self._recent.popleft()

    def _quota_check(self, now: float) -> None:
        if self.calls_per_month is not None and self._calls_month >= self.calls_per_month:
            raise QuotaExhausted(
                f"monthly quota of {self.calls_per_month} calls used", _next_month_start(now)
            )
        if self.calls_per_day is not None and self._calls_today >= self.calls_per_day:
            raise QuotaExhausted(
                f"daily quota of {self.calls_per_day} calls used", _next_utc_midnight(now)
            )

    def _wait_needed(self, now: float) -> float:
        wait = self._blocked_until - now
        if self.calls_per_minute is not None and len(self._recent) >= self.calls_per_minute:
            wait = max(wait, self._recent[0] + WINDOW_S - now)
        return max(wait, 0.0)

    def _try_take(self) -> float:
        """Take a slot now and return 0, or return how long to wait. May raise QuotaExhausted."""
        with self._lock:
            now = self._clock()
            self._roll(now)
            self._quota_check(now)
            wait = self._wait_needed(now)
            if wait > 0:
                return wait
            self._recent.append(now)
            self._calls_today += 1
            self._calls_month += 1
            return 0.0

    # -- public API -------------------------------------------------------------------

    async def acquire(self) -> None:
        """Wait for a per-minute slot and count one call; raises QuotaExhausted when out."""
        while True:
            wait = self._try_take()
            if wait <= 0:
                return
            await self._sleep(wait)

    def block_until(self, ts: float) -> None:
        """Hold every caller until ``ts`` (epoch s), e.g. after a 429 with Retry-After."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, ts)

    def block_for(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` from now (by the limiter's clock)."""
        self.block_until(self._clock() + max(float(seconds), 0.0))

    def set_usage(self, calls_today: int, calls_this_month: int) -> None:
        """Seed the quota counters (e.g. from today's vendor_sync_logs after a restart)."""
        with self._lock:
            self._roll(self._clock())
            self._calls_today = int(calls_today)
            self._calls_month = int(calls_this_month)

    def usage(self) -> dict[str, int | float | None]:
        """Counters and limits, for progress lines ("312/300 calls today")."""
        with self._lock:
            now = self._clock()
            self._roll(now)
            return {
                "calls_last_minute": len(self._recent),
                "calls_today": self._calls_today,
                "calls_this_month": self._calls_month,
                "calls_per_minute": self.calls_per_minute,
                "calls_per_day": self.calls_per_day,
                "calls_per_month": self.calls_per_month,
                "blocked_for_s": max(self._blocked_until - now, 0.0),
            }


class RateLimiterRegistry:
    """Hands out one limiter per vendor account id, so every job shares it."""

    def __init__(self, factory: Callable[[str, VendorLimits], RateLimiter] | None = None,
                 **limiter_kw) -> None:
        self._limiters: dict[str, RateLimiter] = {}
        self._lock = threading.Lock()
        self._kw = limiter_kw
        # e.g. ratelimit_shared.shared_limiter_factory: state in Redis across processes
        self._factory = factory

    def __contains__(self, account_key: str) -> bool:
        with self._lock:
            return account_key in self._limiters

    def get(self, account_key: str, limits: VendorLimits) -> RateLimiter:
        with self._lock:
            limiter = self._limiters.get(account_key)
            if limiter is None:
                limiter = (self._factory(account_key, limits) if self._factory
                           else RateLimiter.from_limits(limits, **self._kw))
                self._limiters[account_key] = limiter
            return limiter

    def put(self, account_key: str, limiter: RateLimiter) -> None:
        """Use a specific limiter for an account (e.g. an unlimited one for the emulator)."""
        with self._lock:
            self._limiters[account_key] = limiter

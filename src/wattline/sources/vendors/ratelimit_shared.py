"""The per-account rate limiter with its state in Redis, for several processes on one account.

Same interface as :class:`~.ratelimit.RateLimiter` (``acquire``, ``block_until``,
``block_for``, ``set_usage``, ``usage``). Every decision is one Lua script run
(atomic in Redis), so any number of workers sharing a vendor account together stay
inside its limits. Keys, under the settings' namespace::

    <ns>ratelimit:{account}:window           sorted set of grant times (last 60 s)
    <ns>ratelimit:{account}:day:YYYYMMDD     calls that UTC day (expires after it)
    <ns>ratelimit:{account}:month:YYYYMM     calls that UTC month (expires after it)
    <ns>ratelimit:{account}:block            vendor back-off until (epoch s, after a 429)

"Now" is ``wattline.clock`` passed into the script, never the Redis server's clock,
so tests with a set clock work and all workers agree with their own time source; key
expiries are durations from that "now" (an EXPIREAT at a set clock's instant behind the
server's deleted the counters at once: the day quota and a 429 block then held nothing).

Redis down: the limiter falls back to an in-process :class:`RateLimiter` (warning
logged once per limiter) rather than refusing every vendor call; the limits then hold
per process only until Redis answers again. Redis is a third-party client here, not
``store/``, so the sources layer stays free of ``store`` imports.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import uuid
from datetime import datetime, timezone

import redis

from wattline import clock as wall_clock

from .errors import QuotaExhausted
from .models import VendorLimits
from .ratelimit import WINDOW_S, Clock, RateLimiter, Sleep, _next_month_start, _next_utc_midnight

log = logging.getLogger(__name__)
_CALLS = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="ratelimit")  # Redis round trips

# returns {status, value}: 1 granted; 0 wait value seconds; -1/-2 day/month quota, value = refresh
_ACQUIRE = """
local now = tonumber(ARGV[1])
local per_min, per_day, per_month = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local day_refresh, month_refresh = tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60)
local month = tonumber(redis.call('GET', KEYS[3]) or '0')
if per_month > 0 and month >= per_month then return {-2, tostring(month_refresh)} end
local day = tonumber(redis.call('GET', KEYS[2]) or '0')
if per_day > 0 and day >= per_day then return {-1, tostring(day_refresh)} end
local wait = tonumber(redis.call('GET', KEYS[4]) or '0') - now
if per_min > 0 and redis.call('ZCARD', KEYS[1]) >= per_min then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  wait = math.max(wait, tonumber(oldest[2]) + 60 - now)
end
if wait > 0 then return {0, tostring(wait)} end
redis.call('ZADD', KEYS[1], now, ARGV[7])
redis.call('EXPIRE', KEYS[1], 120)
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], math.floor(day_refresh - now) + 3600)
redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], math.floor(month_refresh - now) + 3600)
return {1, '0'}
"""

_BLOCK = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', math.max(math.floor(tonumber(ARGV[1]) - tonumber(ARGV[2])), 0) + 1)
end
return 1
"""


class SharedRateLimiter:
    """Paces and counts one vendor account's calls across processes (``None`` = unlimited)."""

    def __init__(self, client: redis.Redis, key_prefix: str, limits: VendorLimits, *,
                 clock: Clock = wall_clock.now, sleep: Sleep = asyncio.sleep) -> None:
        self.calls_per_minute = limits.calls_per_minute
        self.calls_per_day = limits.calls_per_day
        self.calls_per_month = limits.calls_per_month
        self._r = client
        self._prefix = key_prefix
        self._clock = clock
        self._sleep = sleep
        self._acquire = client.register_script(_ACQUIRE)
        self._block = client.register_script(_BLOCK)
        # used while Redis is unreachable, so vendor calls go on (limits per process then)
        self._local = RateLimiter.from_limits(limits, clock=clock, sleep=sleep)
        self._warned = False

    def _keys(self, now: float) -> list[str]:
        d = datetime.fromtimestamp(now, timezone.utc)
        p = self._prefix
        return [f"{p}window", f"{p}day:{d:%Y%m%d}", f"{p}month:{d:%Y%m}", f"{p}block"]

    def _down(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            log.warning("Redis unreachable for the shared rate limiter (%s): limits hold per "
                        "process until it is back", type(exc).__name__)

    def _try_take(self) -> float:
        now = self._clock()
        try:
            status, value = self._acquire(
                keys=self._keys(now),
                args=[repr(now), self.calls_per_minute or 0, self.calls_per_day or 0,
                      self.calls_per_month or 0, _next_utc_midnight(now), _next_month_start(now),
                      f"{now!r}:{uuid.uuid4().hex}"])
        except redis.RedisError as exc:
            self._down(exc)
            return self._local._try_take()
        self._warned = False
        status, value = int(status), float(value)
        if status == -2:
            raise QuotaExhausted(f"monthly quota of {self.calls_per_month} calls used", int(value))
        if status == -1:
            raise QuotaExhausted(f"daily quota of {self.calls_per_day} calls used", int(value))
        return value if status == 0 else 0.0

    async def acquire(self) -> None:
        """Wait for a per-minute slot and count one call; raises QuotaExhausted when out."""
        while True:
            # in a worker thread: the script's round trip must not stall the event loop
            # (measured: 11 % of a 3,000-system poller's samples blocked in it on the loop)
            # (threads of its own: the default executor may be busy with database writes)
            wait = await asyncio.get_running_loop().run_in_executor(_CALLS, self._try_take)
            if wait <= 0:
                return
            await self._sleep(wait)

    def block_until(self, ts: float) -> None:
        """Hold every caller of the account, in every process, until ``ts`` (epoch s)."""
        self._local.block_until(ts)
        try:
            self._block(keys=[f"{self._prefix}block"], args=[repr(float(ts)), repr(self._clock())])
        except redis.RedisError as exc:
            self._down(exc)

    def block_for(self, seconds: float) -> None:
        self.block_until(self._clock() + max(float(seconds), 0.0))

    def set_usage(self, calls_today: int, calls_this_month: int) -> None:
        """Seed the shared quota counters (never lowers what other workers counted)."""
        self._local.set_usage(calls_today, calls_this_month)
        now = self._clock()
        _, day, month, _ = self._keys(now)
        try:
            pipe = self._r.pipeline()
            for key, n, exp in ((day, calls_today, _next_utc_midnight(now)),
                                (month, calls_this_month, _next_month_start(now))):
                cur = int(self._r.get(key) or 0)
                if int(n) > cur:
                    pipe.set(key, int(n), ex=max(int(exp - now), 0) + 3600)  # a duration: see above
            pipe.execute()
        except redis.RedisError as exc:
            self._down(exc)

    def usage(self) -> dict[str, int | float | None]:
        now = self._clock()
        win, day, month, block = self._keys(now)
        try:
            n_win = self._r.zcount(win, now - WINDOW_S + 1e-9, "+inf")
            today, mon, blocked = (self._r.get(k) for k in (day, month, block))
        except redis.RedisError as exc:
            self._down(exc)
            return self._local.usage()
        return {
            "calls_last_minute": int(n_win),
            "calls_today": int(today or 0),
            "calls_this_month": int(mon or 0),
            "calls_per_minute": self.calls_per_minute,
            "calls_per_day": self.calls_per_day,
            "calls_per_month": self.calls_per_month,
            "blocked_for_s": max(float(blocked or 0) - now, 0.0),
        }


def shared_limiter_factory(redis_url: str, namespace: str, **kw):
    """A ``(account_key, limits) -> SharedRateLimiter`` for :class:`RateLimiterRegistry`."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=0.5, socket_timeout=0.5)

    def make(account_key: str, limits: VendorLimits) -> SharedRateLimiter:
        return SharedRateLimiter(client, f"{namespace}ratelimit:{{{account_key}}}:", limits, **kw)

    return make

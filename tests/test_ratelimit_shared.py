"""The shared (Redis) per-account limiter, against the test's own redis-server
(tests/redis/test.conf on a free port): two limiters on one account never grant more
than the per-minute limit together; a shared day quota; a 429 block seen by both;
Redis stopped mid-run falls back to the in-process limiter."""

from __future__ import annotations

import asyncio

import pytest

from wattline.sources.vendors.errors import QuotaExhausted
from wattline.sources.vendors.models import VendorLimits
from wattline.sources.vendors.ratelimit import RateLimiterRegistry
from wattline.sources.vendors.ratelimit_shared import SharedRateLimiter, shared_limiter_factory

T0 = 1_796_255_400.0  # 2026-12-02T22:30:00Z


@pytest.fixture
def server(redis_server):
    return redis_server  # conftest's: the test's own redis-server


def lim(**kw):
    return VendorLimits(max_range_s=86400, page_size=100, interval_s=300,
                        **{"calls_per_minute": None, "calls_per_day": None, "calls_per_month": None, **kw})


class SimClock:
    def __init__(self):
        self.t = T0

    def __call__(self):
        return self.t


def pair(server, limits, clock):
    regs = [RateLimiterRegistry(shared_limiter_factory(server.url, "t:", clock=clock)) for _ in range(2)]
    return [r.get("acct-1", limits) for r in regs]


def test_two_limiters_never_exceed_calls_per_minute(server):
    clock = SimClock()
    a, b = pair(server, lim(calls_per_minute=10), clock)
    assert isinstance(a, SharedRateLimiter)
    granted = sum(1 for i in range(30) if (a if i % 2 else b)._try_take() == 0)
    assert granted == 10
    clock.t += 61
    assert a._try_take() == 0 and b.usage()["calls_last_minute"] == 1


def test_day_quota_shared_raises_with_refresh_in_both(server):
    clock = SimClock()
    a, b = pair(server, lim(calls_per_day=300), clock)
    for i in range(300):
        assert (a if i % 2 else b)._try_take() == 0
    for one in (a, b):
        with pytest.raises(QuotaExhausted) as e:
            one._try_take()
        assert e.value.resets_at_ts == 1_796_256_000  # next UTC midnight


def test_block_in_one_makes_the_other_wait(server):
    clock = SimClock()
    a, b = pair(server, lim(calls_per_minute=100), clock)
    a.block_for(30)
    assert b._try_take() == pytest.approx(30)
    clock.t += 31
    assert b._try_take() == 0


def test_redis_stopped_falls_back_in_process(server, caplog):
    clock = SimClock()
    a, _ = pair(server, lim(calls_per_minute=2), clock)
    assert a._try_take() == 0
    server.stop()
    assert a._try_take() == 0 and a._try_take() == 0  # local limiter: its own 2 slots
    assert a._try_take() > 0
    assert sum("Redis unreachable" in r.message for r in caplog.records) == 1
    asyncio.run(asyncio.sleep(0))

"""The shared per-account limiter, on simulated time (no real sleeping)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from wattline.sources.vendors import QuotaExhausted, RateLimiter, RateLimiterRegistry, VendorLimits


def utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=timezone.utc).timestamp())


class RecordingLimiter(RateLimiter):
    """Notes the (simulated) time of every granted call."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.granted: list[float] = []

    def _try_take(self) -> float:
        wait = super()._try_take()
        if wait <= 0:
            self.granted.append(self._clock())
        return wait


def max_in_any_minute(times: list[float]) -> int:
    times = sorted(times)
    return max(sum(1 for u in times if t <= u < t + 60) for t in times)


def test_per_minute_pacing_holds_on_simulated_time(kit):
    clock = kit.FakeClock(utc(2024, 5, 1, 12))
    limiter = RecordingLimiter(calls_per_minute=5, clock=clock, sleep=clock.sleep)

    async def main():
        for _ in range(12):
            await limiter.acquire()

    kit.run(main())
    assert len(limiter.granted) == 12
    assert max_in_any_minute(limiter.granted) == 5
    # 12 calls at 5/min need two full windows of waiting, and no more than that
    assert limiter.granted[-1] - limiter.granted[0] == pytest.approx(120.0)
    assert sum(clock.sleeps) == pytest.approx(120.0)


def test_pacing_holds_for_concurrent_tasks(kit):
    clock = kit.FakeClock(utc(2024, 5, 1, 12))
    limiter = RecordingLimiter(calls_per_minute=3, clock=clock, sleep=clock.sleep)

    async def main():
        await asyncio.gather(*(limiter.acquire() for _ in range(10)))

    kit.run(main())
    assert len(limiter.granted) == 10
    assert max_in_any_minute(limiter.granted) <= 3


def test_daily_quota_raises_with_reset_time_and_refreshes(kit):
    clock = kit.FakeClock(utc(2024, 5, 1, 23, 50))
    limiter = RateLimiter(calls_per_day=3, clock=clock, sleep=clock.sleep)

    async def take(n: int) -> None:
        for _ in range(n):
            await limiter.acquire()

    kit.run(take(3))
    with pytest.raises(QuotaExhausted) as exc:
        kit.run(take(1))
    assert exc.value.resets_at_ts == utc(2024, 5, 2)  # next UTC midnight
    assert limiter.usage()["calls_today"] == 3
    clock.t = exc.value.resets_at_ts  # the caller pauses until the reset, then resumes
    kit.run(take(3))
    assert limiter.usage()["calls_today"] == 3


def test_monthly_quota_resets_at_month_start(kit):
    clock = kit.FakeClock(utc(2024, 12, 31, 10))
    limiter = RateLimiter(calls_per_month=2, clock=clock, sleep=clock.sleep)
    kit.run(limiter.acquire())
    kit.run(limiter.acquire())
    with pytest.raises(QuotaExhausted) as exc:
        kit.run(limiter.acquire())
    assert exc.value.resets_at_ts == utc(2025, 1, 1)
    clock.t = utc(2025, 1, 1, 0, 0, 1)
    kit.run(limiter.acquire())
    assert limiter.usage()["calls_this_month"] == 1


def test_quota_is_checked_before_waiting_for_a_slot(kit):
    clock = kit.FakeClock(utc(2024, 5, 1, 12))
    limiter = RateLimiter(calls_per_minute=1, calls_per_day=1, clock=clock, sleep=clock.sleep)
    kit.run(limiter.acquire())
    with pytest.raises(QuotaExhausted):
        kit.run(limiter.acquire())
    assert clock.sleeps == []  # no pointless wait for a minute slot first


def test_block_for_holds_every_caller(kit):
    clock = kit.FakeClock(1000.0)
    limiter = RateLimiter.unlimited(clock=clock, sleep=clock.sleep)
    limiter.block_for(7.5)
    kit.run(limiter.acquire())
    assert clock.t == pytest.approx(1007.5)


def test_set_usage_seeds_the_counters(kit):
    clock = kit.FakeClock(utc(2024, 5, 1, 12))
    limiter = RateLimiter(calls_per_day=300, clock=clock, sleep=clock.sleep)
    limiter.set_usage(calls_today=300, calls_this_month=1000)
    with pytest.raises(QuotaExhausted):
        kit.run(limiter.acquire())


def test_registry_shares_one_limiter_per_account():
    registry = RateLimiterRegistry()
    limits = VendorLimits(max_range_s=86400, page_size=None, interval_s=900, calls_per_minute=10, calls_per_day=300)
    a = registry.get("solarman:account-1", limits)
    assert registry.get("solarman:account-1", limits) is a
    assert registry.get("solarman:account-2", limits) is not a
    assert (a.calls_per_minute, a.calls_per_day, a.calls_per_month) == (10, 300, None)


def test_invalid_limits_are_refused():
    with pytest.raises(ValueError):
        RateLimiter(calls_per_minute=0)

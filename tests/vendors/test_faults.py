"""Failure recovery over real HTTP: faults, Retry-After, timeouts, auth, token expiry, quotas."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from wattline import clock as wall_clock
from wattline.sources.vendors import (
    QuotaExhausted,
    RateLimiter,
    VendorAuthError,
    VendorLimits,
    VendorRateLimited,
    VendorRequestError,
    VendorUnavailable,
    get_adapter_class,
)
from wattline.sources.vendors.solarman import SolarmanAdapter
from wattline.sources.vendors.sungrow import SungrowAdapter

VENDORS = ["solarman", "sungrow"]


def utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=timezone.utc).timestamp())


def plant_of(kit, vendor: str) -> tuple[str, str]:
    if vendor == "solarman":
        return kit.SOLARMAN_PLANT, kit.SOLARMAN_TZ
    return kit.SUNGROW_PLANT, kit.SUNGROW_TZ


def fetch(kit, ad, vendor: str, start: int, end: int):
    plant, tz = plant_of(kit, vendor)

    async def main():
        async with ad:
            return await ad.fetch_history(plant, start, end, tz)

    return kit.run(main())


class SmallPages(SolarmanAdapter):
    """Many calls per week, so a 20 % fault rate hits every fault kind."""

    limits = VendorLimits(max_range_s=7 * 86400, page_size=48, interval_s=900, calls_per_minute=None)


class OneDayWindows(SungrowAdapter):
    """One day per call, as in the captured request: many calls per week."""

    limits = VendorLimits(max_range_s=86400, page_size=None, interval_s=900, calls_per_minute=None)


@pytest.mark.parametrize("vendor", VENDORS)
def test_twenty_percent_faults_every_recoverable_record_arrives(kit, start_cloud, vendor):
    running = start_cloud(fault_rate=0.2, seed=7, retry_after_s=1, slow_delay_s=0.6)
    clock = kit.FakeClock(wall_clock.now())  # 429 waits are simulated, everything else is real
    cls = SmallPages if vendor == "solarman" else OneDayWindows
    ad = cls(
        running.base_url, kit.credentials(vendor), timeout_s=0.3,
        limiter=RateLimiter.unlimited(clock=clock, sleep=clock.sleep),
        retry_waits_s=kit.FAST_WAITS + (0.01,) * 4, sleep=clock.sleep,
    )
    weeks = 3 if vendor == "solarman" else 8
    start = utc(2024, 6, 3)
    end = start + weeks * 7 * kit.DAY
    result = fetch(kit, ad, vendor, start, end)

    plant, _ = plant_of(kit, vendor)
    expected = kit.expected_records(vendor, plant, start, end)
    got = {r.ts: r.values for r in result.records}
    assert all(got[t] == expected[t] for t in got)
    # every record arrived, either good or rejected with its raw data: none lost
    ts_field = "lastUpdateTime" if vendor == "solarman" else "time_stamp"
    rejected_keys = [r.raw.get(ts_field) for r in result.rejected]
    assert result.rejected, "the fault mix must have produced malformed records"
    assert len(got) + len(result.rejected) == len(expected)
    for rej in result.rejected:
        assert isinstance(rej.raw, dict) and rej.raw
        assert any(word in rej.reason for word in ("missing", "null", "not numeric")), rej.reason
    if vendor == "sungrow":
        from wattline.sources.vendors.sungrow import parse_stamp

        rejected_ts = {parse_stamp(k, kit.SUNGROW_TZ) for k in rejected_keys}
        assert rejected_ts.isdisjoint(got) and rejected_ts | set(got) == set(expected)

    faults = running.state.stats.faults()
    assert {"429", "slow", "malformed"} <= set(faults) and {"500", "503"} & set(faults), faults
    statuses = {c.status for c in result.calls}
    assert {429, 200, None} <= statuses and statuses & {500, 503}
    timeouts = [c for c in result.calls if c.status is None]
    assert timeouts and all("timeout" in c.error for c in timeouts)
    # every 429 was followed by a wait of at least its Retry-After (1 s)
    assert [c for c in result.calls if c.status == 429]
    assert clock.sleeps and max(clock.sleeps) >= 1.0
    assert sum(1 for s in clock.sleeps if s >= 1.0) >= sum(1 for c in result.calls if c.status == 429)
    # no page that was delivered was fetched again
    assert max(running.state.stats.served_data_pages(vendor).values()) == 1


def test_429_waits_the_retry_after_for_real(kit, start_cloud):
    running = start_cloud(scripted_faults=[None, "429"], retry_after_s=1)  # token ok, data 429
    ad = SolarmanAdapter(running.base_url, kit.credentials("solarman"), limiter=RateLimiter.unlimited(), retry_waits_s=(0, 0, 0, 0))
    t0 = time.monotonic()
    result = fetch(kit, ad, "solarman", kit.START, kit.START + kit.DAY)
    elapsed = time.monotonic() - t0
    assert 1.0 <= elapsed < 5.0
    history = [c for c in result.calls if c.path == "/station/v1.0/history"]
    assert [(c.status, c.attempt) for c in history] == [(429, 1), (200, 2)]
    assert len(result.records) == 96


def test_429_also_pauses_the_shared_limiter(kit, start_cloud):
    running = start_cloud(scripted_faults=[None, "429"], retry_after_s=30)
    clock = kit.FakeClock(1_000_000.0)
    limiter = RateLimiter.unlimited(clock=clock, sleep=clock.sleep)
    ad = SolarmanAdapter(running.base_url, kit.credentials("solarman"), limiter=limiter, sleep=clock.sleep)
    fetch(kit, ad, "solarman", kit.START, kit.START + kit.DAY)
    assert clock.sleeps == [30.0]  # the adapter waited Retry-After once; the limiter needed no more
    assert limiter.usage()["blocked_for_s"] == 0.0


def test_very_long_retry_after_is_raised_not_waited(kit, start_cloud):
    running = start_cloud(scripted_faults=[None, "429"], retry_after_s=3600)
    clock = kit.FakeClock(1_000_000.0)
    ad = SolarmanAdapter(running.base_url, kit.credentials("solarman"),
                         limiter=RateLimiter.unlimited(clock=clock, sleep=clock.sleep), sleep=clock.sleep)
    with pytest.raises(VendorRateLimited) as exc:
        fetch(kit, ad, "solarman", kit.START, kit.START + kit.DAY)
    assert exc.value.retry_after_s == 3600.0 and clock.sleeps == []  # the caller pauses, not a worker
    assert [c.status for c in exc.value.calls] == [200, 429]


def test_timeout_is_retried(kit, start_cloud):
    running = start_cloud(scripted_faults=[None, "slow"], slow_delay_s=1.0)
    ad = get_adapter_class("sungrow")(
        running.base_url, kit.credentials("sungrow"), timeout_s=0.25,
        limiter=RateLimiter.unlimited(), retry_waits_s=kit.FAST_WAITS,
    )
    result = fetch(kit, ad, "sungrow", kit.START, kit.START + kit.DAY)
    data = [c for c in result.calls if c.path.endswith("queryMutiPointDataList")]
    assert [c.status for c in data] == [None, 200]
    assert "timeout" in data[0].error and data[0].duration_ms >= 250
    assert len(result.records) == 96


@pytest.mark.parametrize("vendor", VENDORS)
def test_retries_exhausted_raise_with_the_call_log(kit, start_cloud, vendor):
    # login passes, then every attempt of the first data call fails: 1 + 4 retries
    running = start_cloud(scripted_faults=[None] + ["503", "500", "503", "503", "500"])
    ad = get_adapter_class(vendor)(
        running.base_url, kit.credentials(vendor), limiter=RateLimiter.unlimited(), retry_waits_s=kit.FAST_WAITS,
    )
    with pytest.raises(VendorUnavailable, match="HTTP 5") as exc:
        fetch(kit, ad, vendor, kit.START, kit.START + 14 * kit.DAY)
    failed = [c for c in exc.value.calls if c.status in (500, 503)]
    assert [c.attempt for c in failed] == [1, 2, 3, 4, 5]
    assert exc.value.partial is not None and exc.value.partial.records == []


def test_partial_result_survives_a_later_failure(kit, start_cloud):
    running = start_cloud(scripted_faults=[None, None] + ["503"] * 5)  # token, week 1 ok, week 2 fails
    ad = get_adapter_class("sungrow")(
        running.base_url, kit.credentials("sungrow"), limiter=RateLimiter.unlimited(), retry_waits_s=kit.FAST_WAITS,
    )
    with pytest.raises(VendorUnavailable) as exc:
        fetch(kit, ad, "sungrow", kit.START, kit.START + 14 * kit.DAY)
    assert len(exc.value.partial.records) == 7 * 96


@pytest.mark.parametrize(
    "vendor, change, code",
    [
        ("solarman", {"password": "wrong"}, "2101019"),
        ("solarman", {"app_secret": "wrong"}, "2101003"),
        ("sungrow", {"password": "wrong"}, "0"),
        ("sungrow", {"appkey": "WRONG"}, "E00000"),
    ],
)
def test_bad_credentials_raise_auth_error_without_retrying(kit, cloud, vendor, change, code):
    cloud.state.stats.reset()
    ad = get_adapter_class(vendor)(cloud.base_url, kit.credentials(vendor, **change), limiter=RateLimiter.unlimited())

    async def main():
        async with ad:
            await ad.test_connection()

    with pytest.raises(VendorAuthError) as exc:
        kit.run(main())
    assert exc.value.code == code
    assert len(exc.value.calls) == 1  # credentials are not retried
    secret = change.get("password") or change.get("app_secret") or change.get("appkey")
    assert secret not in str(exc.value) and secret not in repr(exc.value.calls)
    with pytest.raises(VendorAuthError):
        fetch(kit, ad, vendor, kit.START, kit.START + kit.DAY)
    assert cloud.state.stats.count(vendor, endpoint=None, status=200) == 2  # two logins, no data calls
    assert cloud.state.stats.errors() == {"auth": 2}


def test_missing_credentials_raise_auth_error_before_any_call(kit, cloud):
    cloud.state.stats.reset()
    with pytest.raises(VendorAuthError, match="missing key 'username'") as exc:
        get_adapter_class("sungrow")(cloud.base_url, {"appkey": "x"}, limiter=RateLimiter.unlimited())
    assert "missing key 'password'" in str(exc.value)
    assert cloud.state.stats.count("sungrow") == 0


@pytest.mark.parametrize("vendor", VENDORS)
def test_expired_token_relogs_in_once(kit, start_cloud, vendor):
    running = start_cloud()
    ad = get_adapter_class(vendor)(running.base_url, kit.credentials(vendor), limiter=RateLimiter.unlimited())
    plant, tz = plant_of(kit, vendor)

    async def main():
        async with ad:
            first = await ad.fetch_history(plant, kit.START, kit.START + kit.DAY, tz)
            running.state.tokens[vendor].revoke_all()
            second = await ad.fetch_history(plant, kit.START, kit.START + kit.DAY, tz)
            return first, second

    first, second = kit.run(main())
    assert len(first.records) == len(second.records) == 96
    login = "token" if vendor == "solarman" else "login"
    assert running.state.stats.count(vendor, login) == 2
    assert running.state.stats.errors() == {"token": 1}
    refused = [c for c in second.calls if c.error]
    assert len(refused) == 1 and ("E00003" in refused[0].error or refused[0].status == 401)
    assert ad._token not in repr(second.calls)


def test_token_refused_right_after_login_is_an_auth_error(kit, start_cloud):
    running = start_cloud(token_ttl_s=0)  # every token is expired at once
    ad = get_adapter_class("sungrow")(running.base_url, kit.credentials("sungrow"), limiter=RateLimiter.unlimited())
    with pytest.raises(VendorAuthError, match="fresh login"):
        fetch(kit, ad, "sungrow", kit.START, kit.START + kit.DAY)
    assert running.state.stats.count("sungrow", "login") == 2


def test_unknown_plant_is_a_vendor_error_when_configured(kit, start_cloud):
    running = start_cloud(unknown_plants="error")
    for vendor in VENDORS:
        ad = get_adapter_class(vendor)(running.base_url, kit.credentials(vendor), limiter=RateLimiter.unlimited())

        async def main():
            async with ad:
                return await ad.fetch_history("999999", kit.START, kit.START + kit.DAY, "UTC")

        with pytest.raises(VendorRequestError):
            kit.run(main())


def test_quota_exhaustion_stops_the_fetch_and_resumes_after_reset(kit, cloud):
    clock = kit.FakeClock(utc(2024, 11, 1, 23, 0))
    limiter = RateLimiter(calls_per_day=3, clock=clock, sleep=clock.sleep)
    ad = get_adapter_class("sungrow")(cloud.base_url, kit.credentials("sungrow"), limiter=limiter)
    with pytest.raises(QuotaExhausted) as exc:
        fetch(kit, ad, "sungrow", kit.START, kit.START + 28 * kit.DAY)  # login + 4 data calls
    assert exc.value.resets_at_ts == utc(2024, 11, 2)
    assert len(exc.value.calls) == 3 and len(exc.value.partial.records) == 2 * 7 * 96
    clock.t = exc.value.resets_at_ts
    resumed = fetch(kit, ad, "sungrow", kit.START + 14 * kit.DAY, kit.START + 28 * kit.DAY)
    assert len(resumed.records) == 14 * 96


def test_per_minute_pacing_holds_through_the_adapter(kit, cloud):
    clock = kit.FakeClock(utc(2024, 11, 1, 12))
    granted: list[float] = []

    class Recording(RateLimiter):
        def _try_take(self) -> float:
            wait = super()._try_take()
            if wait <= 0:
                granted.append(self._clock())
            return wait

    limiter = Recording(calls_per_minute=2, clock=clock, sleep=clock.sleep)
    ad = get_adapter_class("sungrow")(cloud.base_url, kit.credentials("sungrow"), limiter=limiter)
    result = fetch(kit, ad, "sungrow", kit.START, kit.START + 35 * kit.DAY)  # login + 5 data calls
    assert len(result.records) == 35 * 96 and len(granted) == 6
    assert all(sum(1 for u in granted if t <= u < t + 60) <= 2 for t in granted)
    assert granted[-1] - granted[0] == pytest.approx(120.0)

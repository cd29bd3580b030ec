"""Amber Electric: mapping against the real captures, the adapter over real HTTP against
the emulation (rate limit, 429, malformed records, quality flag, negative prices), the
prices stored through the pipeline, and prices turned into cost versions."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from world import make_ctx
from wattline import clock as wall_clock
from wattline import provisioning
from wattline.jobs.amber_cost import CURRENCY, cost_from_amber, rate_micro
from wattline.sources.vendors import RateLimiter, VendorAuthError, get_adapter_class
from wattline.sources.vendors.amber import AmberAdapter, general_price_intervals, parse_prices, parse_usage
from wattline.sources.vendors.amber.mapping import (
    GRID_EXPORT_KWH,
    GRID_IMPORT_KWH,
    PRICE_FEEDIN,
    PRICE_GENERAL,
    PRICE_SPIKE,
    PRICE_SPOT,
    USAGE_ESTIMATED,
)
from wattline.simulator.vendor_cloud import BackgroundCloud
from wattline.simulator.vendor_cloud import amber as emu
from wattline.store import cost_versions_repo

FIXTURES = Path(__file__).parent / "fixtures" / "amber"
SITE = emu.DEMO_SITE
CREDS = {"api_key": emu.DEMO_API_KEY}


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


def utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=timezone.utc).timestamp())


# -- mapping against the real captures ---------------------------------------------------


def test_usage_billable_and_estimated_kept_as_the_quality_flag():
    items = fixture("usage_billable+estimated_30min.json")
    records, rejected = parse_usage(items)
    assert rejected == [] and len(records) == 48
    # one record per interval at its end (endTime), kWh as sent
    assert [r.ts for r in records] == [utc(2025, 12, 3, 14, 30) + 1800 * i for i in range(48)]
    assert [r.values[GRID_IMPORT_KWH] for r in records] == [i["kwh"] for i in items]
    flags = [r.values[USAGE_ESTIMATED] for r in records]
    assert flags == [0.0 if i["quality"] == "billable" else 1.0 for i in items]
    assert flags[:4] == [0.0] * 4 and set(flags[4:]) == {1.0}  # 4 billable, then estimated
    assert records[1].raw["intervals"][0]["cost"] == 12.723  # cost (cents) stays in the raw record


def test_usage_all_billable_day_and_empty_answers():
    records, rejected = parse_usage(fixture("usage_2026-02-28_billable_30min.json"))
    assert len(records) == 48 and not rejected
    assert {r.values[USAGE_ESTIMATED] for r in records} == {0.0}
    assert {r.values[GRID_IMPORT_KWH] for r in records} == {0.0}  # zero is a value, not missing
    assert parse_usage(fixture("usage_empty-array.json")) == ([], [])
    assert parse_prices(fixture("prices_current_empty-array.json")) == ([], [])


def test_prices_general_and_feed_in_merged_at_the_interval_start_negative_kept():
    records, rejected = parse_prices(fixture("prices_current_general+feedIn_2021-07-24.json"))
    assert not rejected and len(records) == 1
    r = records[0]
    assert r.ts == utc(2021, 7, 23, 14, 0)  # the boundary, not startTime's :00:01
    assert r.values == {PRICE_GENERAL: 14.67852, PRICE_SPOT: 3.63706, PRICE_SPIKE: 0.0, PRICE_FEEDIN: -3.46711}


@pytest.mark.parametrize("name, general, spot, spike", [
    ("prices_current_range-field_negative-spot_2022-03-09.json", 2.39914, -6.4152, 0.0),
    ("prices_current_spike_2024-08-05.json", 473.8214, 431.43542, 2.0),
    ("prices_current_potential-spike_2024-06-20.json", 501.1488, 458.38791, 1.0),
    ("prices_current_spike_advancedPrice_2025-06-26.json", 1507.25394, 1434.11696, 2.0),
    ("prices_current_general_advancedPrice_2026-08-23.json", 22.31593, 12.30992, 0.0),
])
def test_price_captures_of_five_years(name, general, spot, spike):
    records, rejected = parse_prices(fixture(name))
    assert not rejected
    assert records[0].values == {PRICE_GENERAL: general, PRICE_SPOT: spot, PRICE_SPIKE: spike}


def test_general_price_intervals_for_cost_versions():
    items = (fixture("prices_current_general+feedIn_2021-07-24.json")
             + fixture("prices_current_general_estimate-false_2026-08-22.json"))
    prices, rejected = general_price_intervals(items)
    assert not rejected
    assert [(p.start_ts, p.end_ts, p.c_per_kwh, p.estimate) for p in prices] == [
        (utc(2021, 7, 23, 14, 0), utc(2021, 7, 23, 14, 30), 14.67852, True),
        (utc(2026, 8, 22, 6, 0), utc(2026, 8, 22, 6, 30), 32.19004, False),
    ]
    assert rate_micro(14.67852) == 146_785  # c/kWh -> micro-AUD per kWh, half up
    assert rate_micro(32.19004) == 321_900


@pytest.mark.parametrize("change, reason", [
    (lambda i: i.pop("kwh"), "kwh is missing"),
    (lambda i: i.update(kwh="N/A"), "kwh is not numeric"),
    (lambda i: i.update(kwh=None), "kwh is null"),
    (lambda i: i.update(quality="final"), "quality is 'final'"),
    (lambda i: i.update(channelType="solar"), "channelType is 'solar'"),
    (lambda i: i.update(endTime="2025-12-03T15:00:00"), "endTime has no UTC offset"),
    (lambda i: i.update(endTime="2025-12-03T17:00:00Z"), "not 30 minutes apart"),
    (lambda i: i.update(duration=17), "duration is 17 minutes"),
])
def test_malformed_usage_rejected_with_the_reason(change, reason):
    items = copy.deepcopy(fixture("usage_billable+estimated_30min.json"))
    change(items[3])
    records, rejected = parse_usage(items)
    assert len(records) == 47 and len(rejected) == 1
    assert reason in rejected[0].reason and rejected[0].raw is items[3]


def test_malformed_price_and_a_disagreeing_duplicate_rejected():
    items = copy.deepcopy(fixture("prices_current_general+feedIn_2021-07-24.json"))
    bad = copy.deepcopy(items[0])
    bad["perKwh"] = "x"
    twin = copy.deepcopy(items[0])
    twin["perKwh"] = 99.0
    records, rejected = parse_prices(items + [bad, twin])
    assert len(records) == 1 and records[0].values[PRICE_GENERAL] == 14.67852
    assert [r.reason for r in rejected] == ["perKwh is not numeric: 'x'",
                                           f"second general interval for {utc(2021, 7, 23, 14, 0)} disagrees"]


# -- over real HTTP against the emulation ---------------------------------------------------


class Clock:
    """One simulated time for the emulated cloud and the adapter: sleeping advances it."""

    def __init__(self, t: float) -> None:
        self.t = float(t)
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


@pytest.fixture
def amber_cloud(kit, set_clock):
    set_clock(kit.NOW)  # Wattline's clock too: the adapter asks usage for the last 90 days only
    clock = Clock(kit.NOW)
    running = BackgroundCloud(kit.make_config(clock=clock, history_source="clear_sky", warm_plants=False))
    with running:
        yield running, clock


def adapter(kit, running, clock, limiter=None, **kw) -> AmberAdapter:
    limiter = limiter or RateLimiter.from_limits(AmberAdapter.limits, clock=clock, sleep=clock.sleep)
    return AmberAdapter(running.base_url + "/v1", CREDS, limiter=limiter, sleep=clock.sleep,
                        retry_waits_s=kit.FAST_WAITS, **kw)


def expected_usage(kit, start: int, end: int) -> dict[int, tuple[float, float, float]]:
    """(import kWh, export kWh, estimated) by interval end, from the emulation's own model."""
    site = emu.AmberSite()
    pv = emu.RoofPV(site, SITE, start - 1800, end, "clear_sky")
    out = {}
    for s in range(start - 1800, end, 1800):
        if s + 1800 > kit.NOW or not start <= s + 1800 < end:
            continue
        imp, exp = emu.interval_energy(site, pv, s)
        out[s + 1800] = (imp, exp, 1.0 if kit.NOW - (s + 1800) < 2 * 86400 else 0.0)
    return out


def test_history_usage_and_prices_match_the_emulation(kit, amber_cloud):
    running, clock = amber_cloud
    assert get_adapter_class("amber") is AmberAdapter
    start, end = kit.NOW - 4 * kit.DAY, kit.NOW

    async def main():
        async with adapter(kit, running, clock) as ad:
            return await ad.fetch_history(SITE, start, end, "Australia/Melbourne")

    result = kit.run(main())
    assert not result.rejected
    usage = {r.ts: r.values for r in result.records if GRID_IMPORT_KWH in r.values}
    want = expected_usage(kit, start, end)
    assert usage.keys() == want.keys() and len(want) == 4 * 48
    for ts, (imp, exp, est) in want.items():
        assert (usage[ts][GRID_IMPORT_KWH], usage[ts][GRID_EXPORT_KWH], usage[ts][USAGE_ESTIMATED]) == (imp, exp, est)
    flags = [v[USAGE_ESTIMATED] for _, v in sorted(usage.items())]
    # intervals that ended less than two days ago are still estimates (the one ending
    # exactly two days ago is billable)
    assert flags == [0.0] * (2 * 48 + 1) + [1.0] * (2 * 48 - 1)
    prices = {r.ts: r.values for r in result.records if PRICE_GENERAL in r.values}
    assert len(prices) == 4 * 48 and all(PRICE_FEEDIN in v for v in prices.values())
    negative = [v[PRICE_GENERAL] for v in prices.values() if v[PRICE_GENERAL] < 0]
    assert negative, "sunny Melbourne middays must push the general price below zero"
    # Amber's 7-day limit: every call asked for at most 7 NEM dates
    for c in running.state.stats.calls:
        if c.window:
            a, b = (datetime.fromisoformat(d) for d in c.window)
            assert (b - a).days < 7 and c.status == 200


def test_paced_at_10_per_minute_never_over_50_per_5_minutes(kit, amber_cloud):
    running, clock = amber_cloud

    async def main():
        async with adapter(kit, running, clock) as ad:
            return [await ad.fetch_latest(SITE, "UTC") for _ in range(120)]

    got = kit.run(main())
    assert all(len(r.records) == 1 for r in got)
    stats = running.state.stats
    assert stats.count("amber", "prices_current", status=200) == 120
    assert stats.count("amber", status=429) == 0  # the emulation never had to refuse one
    assert clock.t - kit.NOW >= 11 * 60  # 120 calls at 10 a minute take at least 11 minutes


def test_429_with_ratelimit_headers_is_waited_out(kit, amber_cloud):
    running, clock = amber_cloud
    running.app.state.amber.settings.requests_per_window = 5
    # no pacing of its own: the adapter relies on the vendor's answers
    ad = adapter(kit, running, clock, limiter=RateLimiter.unlimited(clock=clock, sleep=clock.sleep))

    async def main():
        async with ad:
            return [await ad.fetch_latest(SITE, "UTC") for _ in range(12)]

    got = kit.run(main())
    assert all(len(r.records) == 1 for r in got)
    stats = running.state.stats
    assert stats.count("amber", "prices_current", status=200) == 12
    # RateLimit-Remaining 0 made the adapter wait for the window's reset, so it never even got a 429
    assert stats.count("amber", status=429) == 0
    assert clock.t - kit.NOW >= 2 * 300 - 60


def test_429_retry_after_honoured(kit, amber_cloud):
    running, clock = amber_cloud
    ad = adapter(kit, running, clock, limiter=RateLimiter.unlimited(clock=clock, sleep=clock.sleep))
    running.app.state.amber.limiter.take(emu.DEMO_API_KEY, clock.t, 50, 300)  # another client used the window
    for _ in range(49):
        running.app.state.amber.limiter.take(emu.DEMO_API_KEY, clock.t, 50, 300)

    async def main():
        async with ad:
            return await ad.fetch_latest(SITE, "UTC")

    result = kit.run(main())
    assert len(result.records) == 1
    assert [c.status for c in result.calls] == [429, 200]
    assert clock.slept and clock.slept[0] >= 300 - (kit.NOW % 300) - 1  # waited for the window's reset


def test_malformed_records_over_http_rejected_with_a_reason(kit, start_cloud, set_clock):
    set_clock(kit.NOW)
    clock = Clock(kit.NOW)
    running = start_cloud(clock=clock, history_source="clear_sky", warm_plants=False,
                          scripted_faults=["malformed"], seed=3)

    async def main():
        async with adapter(kit, running, clock) as ad:
            return await ad.fetch_history(SITE, kit.NOW - kit.DAY, kit.NOW, "UTC")

    result = kit.run(main())
    assert 1 <= len(result.rejected) <= 3
    assert all(r.reason and isinstance(r.raw, dict) for r in result.rejected)
    usage = [r for r in result.records if GRID_IMPORT_KWH in r.values or GRID_EXPORT_KWH in r.values]
    assert len(usage) == 48  # a corrupted channel loses only its own value, never the interval's other one


def test_wrong_api_key_is_final(kit, amber_cloud):
    running, clock = amber_cloud
    ad = AmberAdapter(running.base_url + "/v1", {"api_key": "psk_wrong"}, limiter=RateLimiter.unlimited(),
                      retry_waits_s=kit.FAST_WAITS)

    async def main():
        async with ad:
            await ad.test_connection()

    with pytest.raises(VendorAuthError):
        kit.run(main())
    assert running.state.stats.count("amber", "sites", status=401) == 1  # not retried


# -- stored through the pipeline, and as cost versions ----------------------------------------


@pytest.fixture
def ctx(sqlite_dbs, tmp_path):
    return make_ctx(sqlite_dbs, tmp_path)


def test_negative_price_stored_negative_and_quality_flag_stored(kit, amber_cloud, ctx):
    from wattline.jobs.fetching import records_to_batch
    from wattline.jobs.plants import load_plant

    running, clock = amber_cloud
    with ctx.dbs.main.begin() as conn:
        account = provisioning.add_vendor_account(conn, ctx.settings, "amber", "home", CREDS,
                                                  base_url=running.base_url + "/v1")
        pid = provisioning.add_vendor_plant(conn, "Amber home", "amber", SITE, "Australia/Melbourne",
                                            vendor_account_id=account)

    async def main():
        async with adapter(kit, running, clock) as ad:
            return await ad.fetch_history(SITE, kit.NOW - 3 * kit.DAY, kit.NOW, "UTC")

    fetched = kit.run(main())
    plant = load_plant(ctx.dbs.main_reader, pid)
    ctx.pipeline.ingest(records_to_batch(plant, fetched.records, "vendor:amber"), refresh_summaries=False)
    from world import stored

    ts, prices = stored(ctx, pid, PRICE_GENERAL)
    want = {r.ts: r.values[PRICE_GENERAL] for r in fetched.records if PRICE_GENERAL in r.values}
    assert dict(zip(ts.tolist(), prices.tolist())) == want
    assert (prices < 0).any()  # stored as negative, not clamped, not dropped
    ts, flags = stored(ctx, pid, USAGE_ESTIMATED)
    assert sorted(set(flags.tolist())) == [0.0, 1.0] and len(ts) == 3 * 48
    _ts, kwh = stored(ctx, pid, GRID_IMPORT_KWH)
    assert len(kwh) == 3 * 48


def test_amber_prices_become_cost_versions_idempotently(kit, amber_cloud, ctx):
    running, clock = amber_cloud
    with ctx.dbs.main.begin() as conn:
        account = provisioning.add_vendor_account(conn, ctx.settings, "amber", "home", CREDS,
                                                  base_url=running.base_url + "/v1")
        provisioning.add_asset(conn, "house", "system", "Australia/Melbourne")
    start, end = kit.NOW - 2 * kit.DAY, kit.NOW + 3600  # the last hour holds the current and forecasts
    kw = {"limiter": RateLimiter.unlimited(), "retry_waits_s": kit.FAST_WAITS}

    first = kit.run(cost_from_amber(ctx, account, None, start, end, asset="house", **kw))
    settled = 2 * 48
    assert first.created == settled and first.existing == 0 and not first.rejected
    assert first.skipped_estimates == 2  # the current interval and one forecast: never priced
    assert first.clamped and all(c < 0 for _, c in first.clamped)
    with ctx.dbs.main.connect() as conn:
        versions = [v for v in cost_versions_repo.list_versions(conn) if v["scope"] == "asset"]
    assert len(versions) == settled
    site = emu.AmberSite()
    pv = emu.RoofPV(site, SITE, start, end, "clear_sky")
    for v in versions:
        general = emu.interval_price(site, pv, int(v["effective_from"]))[0]
        assert v["currency"] == CURRENCY and v["effective_from"] % 1800 == 0
        assert v["cost_per_kwh_micro"] == max(rate_micro(general), 0)
    assert sum(1 for v in versions if v["cost_per_kwh_micro"] == 0) == len(first.clamped)

    again = kit.run(cost_from_amber(ctx, account, SITE, start, end, asset="house", **kw))
    assert again.created == 0 and again.existing == settled
    with ctx.dbs.main.connect() as conn:
        assert len(cost_versions_repo.list_versions(conn)) == settled


def test_backfill_older_than_90_days_asks_usage_only_where_amber_has_it(kit, amber_cloud):
    running, clock = amber_cloud
    start, end = kit.NOW - 100 * kit.DAY, kit.NOW - 80 * kit.DAY

    async def main():
        async with adapter(kit, running, clock, limiter=RateLimiter.unlimited()) as ad:
            return await ad.fetch_history(SITE, start, end, "UTC")

    result = kit.run(main())
    stats = running.state.stats
    assert stats.count("amber", status=422) == 0 and not result.rejected
    usage = [r.ts for r in result.records if GRID_IMPORT_KWH in r.values]
    prices = [r.ts for r in result.records if PRICE_GENERAL in r.values]
    assert len(prices) == 20 * 48  # prices for every day
    oldest = emu.datetime.fromtimestamp(kit.NOW, emu.NEM).replace(hour=0).timestamp() - 90 * kit.DAY
    assert usage and min(usage) > oldest and len(usage) == (end - oldest) // 1800 - 1


def test_cli_cost_from_amber_twice(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from wattline.cli import app
    from wattline.simulator.vendor_cloud import CloudConfig

    monkeypatch.setenv("WATTLINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("WATTLINE_MAIN_URL", raising=False)
    monkeypatch.delenv("WATTLINE_TELEMETRY_URL", raising=False)

    def run(*args: str) -> str:
        r = CliRunner().invoke(app, list(args))
        assert r.exit_code == 0, r.output
        return r.output

    with BackgroundCloud(CloudConfig(clock=wall_clock.now, history_source="clear_sky", warm_plants=False)) as running:
        run("vendors", "add-account", "home", "--vendor", "amber", "--base-url", running.base_url + "/v1",
            "--credential", f"api_key={emu.DEMO_API_KEY}")
        run("assets", "add", "house", "--kind", "system", "--timezone", "Australia/Melbourne")
        first = run("cost", "from-amber", "--account", "1", "--asset", "house", "--days", "1")
        again = run("cost", "from-amber", "--account", "1", "--asset", "house", "--days", "1")
    added = int(first.split(" cost versions added")[0].split()[-1])
    assert 46 <= added <= 48, first  # a day of settled half hours
    assert again.startswith(f"0 cost versions added, {added} already present"), again
    assert emu.DEMO_API_KEY not in first + again
    listed = json.loads(run("cost-versions", "list", "--format", "json"))["versions"]
    assert len(listed) == added and {v["currency"] for v in listed} == {"AUD"}

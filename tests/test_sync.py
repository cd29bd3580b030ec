"""Daily sync, quotas and the schedule, against the emulated clouds over real HTTP."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from sqlalchemy import select, update

from world import CLOUD_NOW, WorldPlant, cloud_config, make_ctx, set_up, stored
from wattline import provisioning
from wattline.jobs.backfill import backfill_plant
from wattline.jobs.scheduler import build_scheduler
from wattline.jobs.sync import sync_all
from wattline.simulator.vendor_cloud.server import BackgroundCloud
from wattline.sources.vendors.ratelimit import RateLimiter
from wattline.store.tables import organizations, vendor_accounts, vendor_sync_logs

DAY = 86400
PLANTS = [
    WorldPlant(201, "solarman", "70000001", "UTC", CLOUD_NOW - 10 * DAY),
    WorldPlant(202, "sungrow", "70000002", "Europe/Berlin", CLOUD_NOW - 10 * DAY),
]


def test_sync_window_covers_an_outage_and_one_failing_plant_does_not_stop_the_run(dbs, tmp_path):
    ctx = make_ctx(dbs, tmp_path)
    cfg = cloud_config(PLANTS, unknown_plants="error")
    with BackgroundCloud(cfg) as cloud:
        set_up(ctx, cloud.base_url, PLANTS)
        # plant 201 was synced 3 days ago; since then: an outage
        first = asyncio.run(sync_all(ctx, now=CLOUD_NOW - 3 * DAY))
        assert first.success and first.plantsSynced == 2
        # a third plant the vendor does not know fails; the others still sync
        with ctx.dbs.main.begin() as conn:
            acc = conn.execute(select(vendor_accounts.c.id).where(vendor_accounts.c.vendor_type == "solarman")).scalar()
            provisioning.add_vendor_plant(conn, "ghost", "solarman", "does-not-exist", "UTC", asset_id=203,
                                       start_operating_time=CLOUD_NOW - DAY, vendor_account_id=acc)
        t0 = time.monotonic()
        second = asyncio.run(sync_all(ctx, now=CLOUD_NOW))
        elapsed = time.monotonic() - t0
    assert second.plantsSynced == 2 and not second.success
    # the reported duration is the run's own, rounded to the second
    h, m, sec = re.fullmatch(r"(?:(\d+)h )?(\d+)m (\d+)s", second.duration).groups()
    assert int(h or 0) * 3600 + int(m) * 60 + int(sec) == pytest.approx(elapsed, abs=1.0)
    assert [e["plant"] for e in second.errors] == [203] and second.errors[0]["vendor"] == "solarman"
    ts, _ = stored(ctx, 201, "energy_total")
    # no gap: every 15 minutes from the first sync's window to now
    assert ts[-1] == CLOUD_NOW and ts[0] == CLOUD_NOW - 4 * DAY
    assert len(ts) == 4 * 96 + 1
    with ctx.dbs.telemetry.connect() as conn:
        runs = conn.execute(select(vendor_sync_logs.c.status, vendor_sync_logs.c.metadata)
                            .where(vendor_sync_logs.c.sync_type == "daily_sync")).all()
        plant_errors = conn.execute(select(vendor_sync_logs.c.plant_id).where(
            vendor_sync_logs.c.status == "error", vendor_sync_logs.c.sync_type == "telemetry")).all()
    assert [r.status for r in runs] == ["success", "partial"]
    assert runs[-1].metadata["errors"] == 1 and runs[-1].metadata["plants"] == 3
    assert {p for (p,) in plant_errors} == {203}


def test_sync_skips_organizations_without_auto_sync(dbs, tmp_path):
    ctx = make_ctx(dbs, tmp_path)
    with BackgroundCloud(cloud_config(PLANTS)) as cloud:
        set_up(ctx, cloud.base_url, PLANTS)
        with ctx.dbs.main.begin() as conn:
            conn.execute(update(organizations).values(auto_sync_enabled=False))
        calls_before = len(cloud.state.stats.calls)
        result = asyncio.run(sync_all(ctx, now=CLOUD_NOW))
        calls = cloud.state.stats.calls[calls_before:]
        assert result.plantsSynced == 0 and result.totalRecords == 0
        assert calls == [], "a skipped organization's plants were fetched"
        assert stored(ctx, 201, "energy_total")[0].size == 0
        # the same sync with auto sync on does fetch them: the flag, not a broken sync, skipped them
        with ctx.dbs.main.begin() as conn:
            conn.execute(update(organizations).values(auto_sync_enabled=True))
        enabled = asyncio.run(sync_all(ctx, now=CLOUD_NOW))
        assert enabled.plantsSynced == 2 and enabled.totalRecords > 0
        assert cloud.state.stats.count("solarman", "history") > 0 and cloud.state.stats.count("sungrow") > 0


def test_backfill_pauses_when_the_quota_runs_out_and_resumes_when_it_refreshes(dbs, tmp_path):
    ctx = make_ctx(dbs, tmp_path)
    plants = PLANTS[1:]  # Sungrow: one call per 7-day chunk
    clock = {"t": float(CLOUD_NOW)}
    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)
        clock["t"] += seconds  # time passes: the quota refreshes at UTC midnight

    with BackgroundCloud(cloud_config(plants)) as cloud:
        set_up(ctx, cloud.base_url, plants)
        with ctx.dbs.main.begin() as conn:
            acc = conn.execute(select(vendor_accounts.c.id)).scalar()
        ctx.limiters.put(f"account:{acc}", RateLimiter(None, 2, None, clock=lambda: clock["t"]))
        progress = []
        result = asyncio.run(backfill_plant(ctx, 202, now=CLOUD_NOW, on_progress=progress.append,
                                            sleep=fake_sleep, clock=lambda: clock["t"]))
    assert result.success
    paused = [p for p in progress if p.paused_until]
    assert paused and paused[0].paused_until == (CLOUD_NOW // DAY + 1) * DAY
    assert slept and slept[0] == pytest.approx(paused[0].paused_until - CLOUD_NOW)
    ts, _ = stored(ctx, 202, "energy_total")
    assert ts[0] == PLANTS[1].start and ts[-1] == CLOUD_NOW and len(ts) == 10 * 96 + 1


def test_quota_usage_survives_a_restart(dbs, tmp_path):
    """Calls logged earlier today count against the daily quota of a new process."""
    ctx = make_ctx(dbs, tmp_path)
    plants = PLANTS[1:]
    with BackgroundCloud(cloud_config(plants)) as cloud:
        set_up(ctx, cloud.base_url, plants)
        asyncio.run(sync_all(ctx))  # logs real calls "today"
        with ctx.dbs.main.begin() as conn:
            conn.execute(update(vendor_accounts).values(rate_limits={"calls_per_day": 1}))
        fresh = make_ctx(dbs, tmp_path)  # a new process: empty limiter registry
        again = asyncio.run(sync_all(fresh))
    assert not again.success and "quota" in again.errors[0]["error"].lower()


def test_schedule_runs_at_0015_local_time_of_each_organization(dbs, tmp_path):
    ctx = make_ctx(dbs, tmp_path)
    with BackgroundCloud(cloud_config(PLANTS)) as cloud:
        set_up(ctx, cloud.base_url, PLANTS)
    with ctx.dbs.main.begin() as conn:
        conn.execute(update(organizations).values(timezone="Asia/Kolkata", sync_interval_minutes=60))
    scheduler = build_scheduler(ctx)
    jobs = {j.id: j for j in scheduler.get_jobs()}
    daily = next(j for k, j in jobs.items() if k.startswith("daily-sync-"))
    from datetime import datetime, timezone

    fire = daily.trigger.get_next_fire_time(None, datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc))
    assert fire.astimezone(timezone.utc) == datetime(2025, 6, 1, 18, 45, tzinfo=timezone.utc)  # 00:15 IST
    assert any(k.startswith("interval-sync-") for k in jobs)


def test_a_sync_reports_its_progress_group_by_group_as_the_jobs_page_shows_it(dbs, tmp_path, monkeypatch):
    from wattline.jobs import sync as sync_module
    from wattline.web.pages import progress_text

    monkeypatch.setattr(sync_module, "GROUP", 1)  # a group per plant
    ctx = make_ctx(dbs, tmp_path)
    reports = []
    with BackgroundCloud(cloud_config(PLANTS)) as cloud:
        set_up(ctx, cloud.base_url, PLANTS)
        result = asyncio.run(sync_all(ctx, now=CLOUD_NOW, on_progress=reports.append))
    assert result.success
    assert [(r["plants_done"], r["plants"], r["errors"]) for r in reports] == [(1, 2, 0), (2, 2, 0)]
    assert 0 < reports[0]["records"] < reports[1]["records"] == result.totalRecords
    assert progress_text(reports[0]) == "plants 1/2"

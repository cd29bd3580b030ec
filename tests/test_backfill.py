"""Backfill over real HTTP against the emulated vendor clouds (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from sqlalchemy import select

from world import CLOUD_NOW, WorldPlant, cloud_config, env_for, expected, make_ctx, set_up, snapshot, stored
from wattline.jobs.backfill import FLUSH_CHUNKS, backfill_plant
from wattline.jobs.fetching import VendorSession
from wattline.simulator.vendor_cloud.server import BackgroundCloud
from wattline.store.tables import plant_aggregates, vendor_sync_logs, work_order_aggregates

DAY = 86400
PLANTS = [
    WorldPlant(123, "solarman", "64786338", "Europe/Berlin", CLOUD_NOW - 45 * DAY),
    WorldPlant(125, "sungrow", "5001250", "Asia/Kolkata", CLOUD_NOW - 45 * DAY),
]


def test_full_backfill_equals_the_emulated_history_and_work_order_sums_plants(dbs, tmp_path):
    ctx = make_ctx(dbs, tmp_path)
    cfg = cloud_config(PLANTS)
    with BackgroundCloud(cfg) as cloud:
        set_up(ctx, cloud.base_url, PLANTS, work_order=456)
        results = [asyncio.run(backfill_plant(ctx, p.plant_id, now=CLOUD_NOW + 60)) for p in PLANTS]
        calls_first = cloud.state.stats.count(endpoint="history") + cloud.state.stats.count(endpoint="data")
        assert all(r.success for r in results), [r.errors for r in results]
        for p in PLANTS:
            exp = expected(cfg, p)
            for key, values in (("energy_total", exp.energy_total_kwh), ("power", exp.power_kw),
                                ("energy_today", exp.energy_today_kwh)):
                ts, got = stored(ctx, p.plant_id, key)
                assert ts.tolist() == exp.ts.tolist(), (p.vendor, key)
                # the clouds send kWh and kW (or W) to the vendor's three decimals
                np.testing.assert_allclose(got, values, rtol=0, atol=5.01e-4)
        # a rerun finds everything stored and fetches nothing it already has
        before = snapshot(ctx)
        again = asyncio.run(backfill_plant(ctx, PLANTS[0].plant_id, now=CLOUD_NOW + 60))
        assert again.recordsSynced == 0 and snapshot(ctx)["readings"] == before["readings"]
        assert cloud.state.stats.count(endpoint="history") + cloud.state.stats.count(endpoint="data") == calls_first

    with ctx.dbs.telemetry.connect() as conn:
        plants = conn.execute(select(plant_aggregates).order_by(plant_aggregates.c.plant_id)).mappings().all()
        wo = conn.execute(select(work_order_aggregates)).mappings().one()
    assert len(plants) == 2
    for col in ("daily_energy_kwh", "monthly_energy_mwh", "yearly_energy_mwh", "total_energy_mwh",
                "current_power_kw"):
        assert float(wo[col]) == pytest.approx(sum(float(p[col]) for p in plants), abs=1e-9)
    assert results[0].cumulative["till_last_day_mwh"] <= float(plants[0]["total_energy_mwh"]) + 1e-9


def test_backfill_with_faults_recovers_every_reading_and_logs_every_failure(dbs, tmp_path):
    ctx = make_ctx(dbs, tmp_path)
    plants = PLANTS[:1]
    cfg = cloud_config(plants, fault_rate=0.2, seed=11, retry_after_s=1, slow_delay_s=1.0)
    with BackgroundCloud(cfg) as cloud:
        set_up(ctx, cloud.base_url, plants)

        async def run_until_done():
            for _ in range(8):  # a chunk whose five attempts all fail ends a run; the next resumes
                async with VendorSession(ctx, timeout_s=0.5, retry_waits_s=(0, 0.01, 0.01, 0.01)) as s:
                    r = await backfill_plant(ctx, 123, now=CLOUD_NOW + 60, session=s)
                if r.success:
                    return r
            raise AssertionError("backfill never completed")

        asyncio.run(run_until_done())
        faults = cloud.state.stats.faults()
    assert sum(faults.values()) > 0
    exp = expected(cfg, plants[0])
    ts, got = stored(ctx, 123, "energy_total")
    where = {t: i for i, t in enumerate(exp.ts.tolist())}
    idx = [where[t] for t in ts.tolist()]
    np.testing.assert_allclose(got, exp.energy_total_kwh[idx], rtol=0, atol=5.01e-4)  # no wrong value stored
    with ctx.dbs.telemetry.connect() as conn:
        logs = conn.execute(select(vendor_sync_logs.c.status, vendor_sync_logs.c.error_message,
                                   vendor_sync_logs.c.metadata)).all()
    failed_calls = [l for l in logs if l.status == "error" and not (l.error_message or "").startswith("rejected")]
    rejected = [l for l in logs if (l.error_message or "").startswith("rejected record")]
    assert len(failed_calls) == sum(n for kind, n in faults.items() if kind != "malformed")
    assert all(r.metadata.get("rejected_raw") for r in rejected)
    # only records the vendor sent corrupted are missing, and each of those is logged
    assert 0 <= len(exp.ts) - len(ts) <= len(rejected)


@pytest.mark.slow
def test_backfill_killed_at_random_moments_ends_identical_to_an_uninterrupted_one(dbs, tmp_path, pg_or_sqlite_pair):
    """SIGKILL a ``wattline backfill`` subprocess a few times, rerun to completion, compare."""
    plants = [WorldPlant(123, "solarman", "64786338", "Europe/Berlin", CLOUD_NOW - 120 * DAY)]
    cfg = cloud_config(plants, latency_ms=40)
    killed_ctx = make_ctx(dbs, tmp_path / "killed")
    clean_ctx = make_ctx(pg_or_sqlite_pair, tmp_path / "clean")
    rng = random.Random(5)
    with BackgroundCloud(cfg) as cloud:
        set_up(killed_ctx, cloud.base_url, plants)
        set_up(clean_ctx, cloud.base_url, plants)
        cmd = [sys.executable, "-m", "wattline.cli", "backfill", "123"]
        # a short lease: a rerun waits for the killed run's lease on the plant to run out
        env = dict(env_for(killed_ctx), WATTLINE_LEASE_S="3")
        kills = 0
        for _ in range(3):
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            # kill at a random moment once this run is fetching (its start-up takes 1-15 s with
            # the machine's load, so a fixed delay could kill it before its first page)
            pages = sum(cloud.state.stats.served_data_pages().values())
            deadline = time.monotonic() + 60
            while (sum(cloud.state.stats.served_data_pages().values()) == pages and proc.poll() is None
                   and time.monotonic() < deadline):
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 2.5))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(30)
        pages_before_final = sum(cloud.state.stats.served_data_pages().values())
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        served = cloud.state.stats.served_data_pages()
        cloud.state.stats.reset()
        ref = asyncio.run(backfill_plant(clean_ctx, 123))
        assert ref.success
    assert kills >= 1, "the backfill finished before any kill: make it slower"
    a, b = snapshot(killed_ctx), snapshot(clean_ctx)
    for table in ("readings", "ledger", "aggregates", "raw", "plants"):
        assert a[table] == b[table], table
    # a killed run refetches at most the chunks it had fetched but not yet stored: the
    # group being stored and the one being gathered (Solarman: up to 2 pages a chunk)
    refetched = sum(n - 1 for n in served.values() if n > 1)
    assert refetched <= 2 * FLUSH_CHUNKS * 2 * kills
    assert pages_before_final > 0


def test_a_sync_before_the_first_backfill_does_not_make_it_skip_the_history(sqlite_dbs, tmp_path):
    # the engine's organization schedule can run the day's sync before a new plant's
    # backfill: the backfill used to resume after the newest stored reading (bench/faults.py)
    from wattline.jobs.sync import sync_all

    ctx = make_ctx(sqlite_dbs, tmp_path)
    plant = WorldPlant(123, "solarman", "64786338", "Europe/Berlin", CLOUD_NOW - 5 * DAY)
    cfg = cloud_config([plant])
    with BackgroundCloud(cfg) as cloud:
        set_up(ctx, cloud.base_url, [plant])
        asyncio.run(sync_all(ctx, now=CLOUD_NOW))
        synced = len(stored(ctx, 123, "energy_total")[0])
        assert asyncio.run(backfill_plant(ctx, 123, now=CLOUD_NOW)).success
    ts, values = stored(ctx, 123, "energy_total")
    exp = expected(cfg, plant)
    assert 0 < synced < len(exp.ts) and len(ts) == len(exp.ts)
    np.testing.assert_allclose(values, exp.energy_total_kwh, rtol=0, atol=5.01e-4)  # the vendor's 3 decimals

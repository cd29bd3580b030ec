"""A monitored system's history through its vendor's API (``wattline systems backfill``):
the stored readings equal the emulated cloud's, a rerun stores nothing twice and
resumes from its checkpoint, a paused or unknown system is refused."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from test_poll import add, stored, world  # noqa: F401  (the fixture)
from world import CLOUD_NOW, WorldPlant, cloud_config, env_for, expected
from wattline import system_admin
from wattline.jobs.system_backfill import SystemNotBackfillable, backfill_system
from wattline.simulator.vendor_cloud.server import BackgroundCloud

SINCE = CLOUD_NOW - 2 * 86400
PLANTS = [WorldPlant(0, "solarman", "72000001", "Europe/Berlin", SINCE - 86400),
          WorldPlant(0, "sungrow", "72000002", "Australia/Sydney", SINCE - 86400)]


def test_backfill_stores_the_clouds_history_from_since_and_a_rerun_adds_nothing(world):
    ctx = world
    cfg = cloud_config(PLANTS)
    with BackgroundCloud(cfg) as cloud:
        ids = [add(ctx, p, cloud.base_url, f"b{i}") for i, p in enumerate(PLANTS)]
        for sid, plant in zip(ids, PLANTS):
            result = asyncio.run(backfill_system(ctx, sid, SINCE, now=CLOUD_NOW))
            assert result.success, result.errors
            series = expected(cfg, plant)
            keep = series.ts >= SINCE
            want = dict(zip(series.ts[keep].tolist(), series.energy_total_kwh[keep].tolist()))
            got = {ts: v for ts, v, _ in stored(ctx, sid)["energy_total"]}
            assert set(got) == set(want) and len(got) > 100
            assert all(got[t] == pytest.approx(want[t], abs=1e-3) for t in want)
            again = asyncio.run(backfill_system(ctx, sid, SINCE, now=CLOUD_NOW))
            assert again.success and again.resumedFrom is not None and again.recordsSynced <= 1
            assert {ts for ts, _, _ in stored(ctx, sid)["energy_total"]} == set(want)


def test_a_paused_or_unknown_system_is_refused_and_the_cli_says_why(world):
    ctx = world
    with BackgroundCloud(cloud_config(PLANTS[:1])) as cloud:
        sid = add(ctx, PLANTS[0], cloud.base_url, "p0")
        with ctx.dbs.main.begin() as conn:
            system_admin.set_status(conn, sid, "paused")
        with pytest.raises(SystemNotBackfillable):
            asyncio.run(backfill_system(ctx, sid, SINCE, now=CLOUD_NOW))
        from wattline.cli import app

        out = CliRunner().invoke(app, ["systems", "backfill", "999", "--since", "2025-11-20T00:00:00Z"],
                                 env=env_for(ctx))
        assert out.exit_code != 0 and "no active system with id 999" in out.output
        out = CliRunner().invoke(app, ["systems", "backfill", str(sid), "--since", "yesterday"], env=env_for(ctx))
        assert out.exit_code != 0 and "--since" in out.output

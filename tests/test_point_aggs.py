"""Per-point 5-minute and daily min/max/avg/sum/count (seed 003 point_readings_agg_5m /
_daily) against hand-computed values; the daily catch-up fills only what is missing and
clear re-derives equal rows; retention deletes only whole old local days of raw readings,
keeps the daily aggregates (and the historical API's answers for old days), and is
idempotent; the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import delete, func, select, update
from typer.testing import CliRunner

from world import make_ctx
from wattline import system_admin
from wattline.domain.readings import ReadingBatch
from wattline.jobs import cleanup, point_daily
from wattline.security.users import create_user
from wattline.store import org_settings_repo, point_aggs, systems_repo
from wattline.store.tables import aggregates, assets, readings

# -- helpers (also used by tests/test_historical_api.py): users, selectronic systems (seed 003
# point keys), readings through the real pipeline
PASSWORD = "a long test password"
CREDS = {"email": "demo@wattline.local", "password": "wattline-demo"}


def users(ctx, *pairs) -> None:
    with ctx.dbs.main.begin() as conn:
        for name, role in pairs:
            create_user(conn, name, PASSWORD, role)


def add_system(ctx, owner: str, name: str, site: str, tz: str = "UTC", capacity_kwh: float | None = None) -> int:
    with ctx.dbs.main.begin() as conn:
        sid = system_admin.add_system(conn, ctx.settings, name, "selectronic", site, owner, timezone=tz,
                                      credentials=CREDS)
        if capacity_kwh is not None:
            conn.execute(update(assets).where(assets.c.id == sid).values(
                attributes={"battery_capacity_kwh": capacity_kwh}))
    return sid


def series(ctx, system_id: int) -> dict[str, int]:
    with ctx.dbs.main_reader.connect() as conn:
        return {p["key"]: p["id"] for p in systems_repo.system_points(conn, system_id)}


def ingest(ctx, series_id: int, ts, values) -> None:
    ts = np.asarray(ts, np.int64)
    batch = ReadingBatch(np.full(len(ts), series_id, np.int64), ts, np.asarray(values, np.float64),
                         np.full(len(ts), -1, np.int64), [], "test")
    ctx.pipeline.ingest(batch, now=int(ts.max()))


def day_rows(ctx, series_ids, period: str = "day") -> dict[tuple, tuple]:
    """Stored aggregates of the series: (series, start) -> rounded figures."""
    a = aggregates.c
    with ctx.dbs.telemetry.connect() as conn:
        rows = conn.execute(select(a.series_id, a.bucket_start, a.bucket_end, a.energy_milli_wh, a.value_min,
                                   a.value_max, a.value_sum, a.value_count, a.ledger_count)
                            .where(a.period == period, a.series_id.in_(list(series_ids)))).all()
    r9 = lambda v: None if v is None else round(float(v), 6)  # noqa: E731
    return {(r[0], r[1]): (r[2], r[3], r9(r[4]), r9(r[5]), r9(r[6]), r[7], r[8]) for r in rows}


T0 = 1_700_006_400  # 2023-11-15 00:00 UTC: a day start and a multiple of 300


@pytest.fixture
def ctx(dbs, tmp_path, set_clock):
    set_clock(T0 + 86400)
    c = make_ctx(dbs, tmp_path)
    users(c, ("alice", "user"))
    return c


def test_five_minute_and_daily_figures_match_hand_computed_values(ctx):
    sid = add_system(ctx, "alice", "Home", "1")
    s = series(ctx, sid)
    # power (kW) every minute: bucket 1 = 1,2,3,4,6; bucket 2 = 2,4
    ingest(ctx, s["solar_w"], [T0 + 60 * i for i in range(5)] + [T0 + 300, T0 + 360], [1, 2, 3, 4, 6, 2, 4])
    # a counter (kWh) on the 5-minute boundaries: 0.5 kWh in bucket 1, 1.0 kWh in bucket 2
    ingest(ctx, s["solar_kwh"], [T0, T0 + 300, T0 + 600], [10.0, 10.5, 11.5])
    with ctx.dbs.telemetry.connect() as conn:
        five = point_aggs.five_minute_rows(conn, s["solar_w"], "UTC", T0, T0 + 900)
        kwh = point_aggs.five_minute_rows(conn, s["solar_kwh"], "UTC", T0, T0 + 900)
        (day,) = point_aggs.daily_rows(conn, [s["solar_w"]], T0, T0 + 86400)
        (kday,) = point_aggs.daily_rows(conn, [s["solar_kwh"]], T0, T0 + 86400)
    got = [(r["start"], r["min"], r["max"], r["avg"], r["sum"], r["count"]) for r in five if r["count"]]
    assert got == [(T0, 1, 6, pytest.approx(3.2), 16, 5), (T0 + 300, 2, 4, 3, 6, 2)]
    energy = {r["start"]: r["energy_milli_wh"] for r in kwh}
    assert (energy[T0], energy[T0 + 300]) == (500_000, 1_000_000)
    assert [r["count"] for r in kwh if r["count"]] == [1, 1, 1]
    assert (day["start"], day["end"], day["min"], day["max"], day["sum"], day["count"]) == (
        T0, T0 + 86400, 1, 6, 22, 7)
    assert day["avg"] == pytest.approx(22 / 7)
    assert (kday["energy_milli_wh"], kday["count"], kday["min"], kday["max"]) == (1_500_000, 3, 10.0, 11.5)
    # the daily bucket is the sum of its 5-minute buckets (same arithmetic)
    assert sum(r["energy_milli_wh"] or 0 for r in kwh) == kday["energy_milli_wh"]
    assert sum(r["count"] for r in five) == day["count"]


def test_five_minute_rows_of_several_series_read_together_equal_each_read_alone(ctx):
    """A composite's chart reads all its members' series at once: the same buckets as
    one read a series (a DST-free zone with entries across buckets and midnights)."""
    _, a = _three_days(ctx, tz="Australia/Brisbane")
    b_sid = add_system(ctx, "alice", "Shed", "2", tz="Australia/Brisbane")
    b = series(ctx, b_sid)
    ts = np.arange(T0 - 2 * 86400, T0, 420)
    ingest(ctx, b["solar_w"], ts, 2.0 + (ts % 5))
    ingest(ctx, b["solar_kwh"], ts, 7 + (ts - ts[0]) / 7200.0)
    ids = [a["solar_w"], a["solar_kwh"], b["solar_w"], b["solar_kwh"]]
    start, end = T0 - 86400 - 137, T0 - 3600
    with ctx.dbs.telemetry.connect() as conn:
        together = point_aggs.five_minute_rows_many(conn, ids, "Australia/Brisbane", start, end)
        alone = [dict(r, series_id=sid) for sid in sorted(ids)
                 for r in point_aggs.five_minute_rows(conn, sid, "Australia/Brisbane", start, end)]
    assert together == alone
    assert {r["series_id"] for r in together} == set(ids)
    assert sum(1 for r in together if r["energy_milli_wh"]) > 500  # energy in most buckets of both systems


def _three_days(ctx, tz="Europe/Berlin"):
    sid = add_system(ctx, "alice", "Home", "1", tz=tz)
    s = series(ctx, sid)
    ts = np.arange(T0 - 3 * 86400, T0, 3000)  # every 50 minutes: entries span midnights
    ingest(ctx, s["solar_w"], ts, 1.0 + (ts % 7))
    ingest(ctx, s["solar_kwh"], ts, 100 + (ts - ts[0]) / 3600.0)
    return sid, s


def test_catchup_fills_only_missing_days_and_clear_rederives_equal_rows(ctx):
    sid, s = _three_days(ctx)
    ids = [s["solar_w"], s["solar_kwh"]]
    before = day_rows(ctx, ids)
    months = day_rows(ctx, ids, "month")
    assert len(before) >= 6
    gone = sorted(before)[:2]
    tampered = sorted(before)[-1]
    with ctx.dbs.telemetry.begin() as conn:
        for sr, start in gone:
            conn.execute(delete(aggregates).where(aggregates.c.series_id == sr, aggregates.c.period == "day",
                                                  aggregates.c.bucket_start == start))
        conn.execute(update(aggregates).where(aggregates.c.series_id == tampered[0], aggregates.c.period == "day",
                                              aggregates.c.bucket_start == tampered[1]).values(value_max=999.0))
    result = point_daily.catchup(ctx)
    assert result["days_filled"] == 2
    after = day_rows(ctx, ids)
    assert {k: v for k, v in after.items() if k != tampered} == {k: v for k, v in before.items() if k != tampered}
    assert after[tampered][3] == 999.0  # catch-up leaves present days alone
    assert point_daily.catchup(ctx)["days_filled"] == 0  # idempotent

    assert point_daily.clear(ctx)["days_derived"] > 0
    assert day_rows(ctx, ids) == before  # re-derived: equal rows, the tampered one restored
    assert day_rows(ctx, ids, "month") == months
    point_daily.clear(ctx)
    assert day_rows(ctx, ids) == before


def test_retention_deletes_whole_old_local_days_and_keeps_daily_aggregates(ctx, set_clock):
    from wattline.api.routes.historical import _series_values  # the API's read of one level

    sid, s = _three_days(ctx)
    ids = [s["solar_w"], s["solar_kwh"]]
    before, months = day_rows(ctx, ids), day_rows(ctx, ids, "month")
    with ctx.dbs.telemetry.connect() as conn:
        n_all = conn.execute(select(func.count()).select_from(readings)).scalar()
    assert cleanup.run(ctx)["readings_deleted"] == 0  # NULL retention: kept
    with ctx.dbs.main.begin() as conn:
        org = conn.execute(select(assets.c.organization_id).where(assets.c.id == sid)).scalar()
        org_settings_repo.set_raw_retention_days(conn, org, 2)
    now = T0 + 3600
    m = cleanup.cutoff(now, 2, "Europe/Berlin")
    assert m == T0 - 2 * 86400 - 3600  # 00:00 in Berlin (UTC+1) two days before
    with ctx.dbs.telemetry.connect() as conn:
        kept_before = conn.execute(select(func.count()).select_from(readings).where(readings.c.ts >= m)).scalar()
        api_before = _series_values(conn, "daily", [(sid, "solar_kwh", {"series_id": s["solar_kwh"],
                                                                         "metric_type": "counter"})],
                                    {sid: "Europe/Berlin"}, T0 - 30 * 86400, now)
    result = cleanup.run(ctx, now_s=now)
    assert result["readings_deleted"] == n_all - kept_before > 0
    assert result["details"][0]["cutoff"] == m
    with ctx.dbs.telemetry.connect() as conn:
        first, = conn.execute(select(func.min(readings.c.ts))).one()
        kept = conn.execute(select(func.count()).select_from(readings)).scalar()
        api_after = _series_values(conn, "daily", [(sid, "solar_kwh", {"series_id": s["solar_kwh"],
                                                                        "metric_type": "counter"})],
                                   {sid: "Europe/Berlin"}, T0 - 30 * 86400, now)
        raw_old = point_aggs.raw_rows(conn, ids, T0 - 4 * 86400, m)
    assert first >= m and kept == kept_before and raw_old == []
    assert day_rows(ctx, ids) == before and day_rows(ctx, ids, "month") == months
    assert api_after == api_before and len(api_after[(sid, "solar_kwh")]) >= 3  # old days still answer
    # later catch-ups and clears never re-derive a deleted day from nothing
    assert point_daily.catchup(ctx)["days_filled"] == 0
    point_daily.clear(ctx)
    assert day_rows(ctx, ids) == before and day_rows(ctx, ids, "month") == months
    assert cleanup.run(ctx, now_s=now)["readings_deleted"] == 0  # idempotent


def test_jobs_are_recorded_and_the_cli_runs_them(tmp_path, monkeypatch, set_clock):
    from wattline.cli import app as cli_app
    from wattline.config import Settings
    from wattline.context import open_context

    for var in ("WATTLINE_MAIN_URL", "WATTLINE_TELEMETRY_URL", "WATTLINE_SECRET_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WATTLINE_DATA_DIR", str(tmp_path / "data"))
    set_clock(T0 + 3600)
    c = open_context(Settings(data_dir=tmp_path / "data"))
    try:
        users(c, ("alice", "user"))
        _three_days(c)
    finally:
        c.close()
    runner = CliRunner()
    r = runner.invoke(cli_app, ["orgs", "set", "--raw-retention-days", "1"])
    assert r.exit_code != 0 and "from 2" in r.output
    r = runner.invoke(cli_app, ["orgs", "set", "--raw-retention-days", "2"])
    assert r.exit_code == 0, r.output
    assert "2 days" in runner.invoke(cli_app, ["orgs", "list"]).output
    assert runner.invoke(cli_app, ["points", "daily"]).exit_code != 0  # neither --catchup nor --clear
    r = runner.invoke(cli_app, ["points", "daily", "--catchup"])
    assert r.exit_code == 0 and '"days_filled": 0' in r.output, r.output
    r = runner.invoke(cli_app, ["cleanup"])
    assert r.exit_code == 0 and '"readings_deleted"' in r.output, r.output
    assert runner.invoke(cli_app, ["orgs", "set", "--raw-retention-days", "keep"]).exit_code == 0
    c = open_context(Settings(data_dir=tmp_path / "data"))
    try:
        assert point_aggs.last_job(c.dbs.telemetry, "point_daily")["status"] == "succeeded"
        last = point_aggs.last_job(c.dbs.telemetry, "cleanup")
        assert last["status"] == "succeeded" and last["result"]["readings_deleted"] > 0
    finally:
        c.close()


def test_serve_schedules_the_daily_catchup_and_the_weekly_cleanup(ctx):
    from datetime import datetime, timezone

    from wattline.jobs.scheduler import build_scheduler

    jobs = {j.id: j for j in build_scheduler(ctx).get_jobs()}
    sat = datetime(2025, 11, 8, 12, 0, tzinfo=timezone.utc)  # a Saturday
    assert jobs["point-daily"].trigger.get_next_fire_time(None, sat) == datetime(2025, 11, 9, 0, 5, tzinfo=timezone.utc)
    assert jobs["cleanup-weekly"].trigger.get_next_fire_time(None, sat) == datetime(
        2025, 11, 9, 3, 30, tzinfo=timezone.utc)

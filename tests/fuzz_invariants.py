"""Cheap consistency checks of both databases after a fuzz run (issue 12: no partial
write). Each returns a list of problems, empty when the databases are consistent."""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from wattline.store.migrate import alembic_config

ENERGY_TYPES = ("counter", "interval_energy")  # MetricType.is_energy: one ledger entry per reading


def series_rows(ctx, asset_id: int) -> list[tuple]:
    """Every reading and ledger entry of one asset's series."""
    with ctx.dbs.main_reader.connect() as conn:
        ids = [r[0] for r in conn.exec_driver_sql(f"SELECT id FROM points WHERE asset_id = {int(asset_id)}")]
    with ctx.dbs.telemetry.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(
            "SELECT series_id, ts, value, start_ts, delta_milli_wh, flags FROM readings "
            f"WHERE series_id IN ({','.join(map(str, ids))}) ORDER BY 1, 2")]


def migrations_at_head(ctx) -> list[str]:
    out = []
    for which, engine in (("main", ctx.dbs.main), ("telemetry", ctx.dbs.telemetry)):
        with engine.connect() as conn:
            current = set(MigrationContext.configure(
                conn, opts={"version_table": f"alembic_version_{which}"}).get_current_heads())
            heads = set(ScriptDirectory.from_config(alembic_config(which, conn)).get_heads())
        if current != heads:
            out.append(f"{which} database at {sorted(current)}, not at head {sorted(heads)}")
    return out


def sqlite_integrity(ctx) -> list[str]:
    """SQLite's own checks: page integrity and every declared foreign key (points of
    missing assets, memberships of missing groups or assets, shares of missing systems...)."""
    out = []
    for which, engine in (("main", ctx.dbs.main), ("telemetry", ctx.dbs.telemetry)):
        with engine.connect() as conn:
            ok = conn.exec_driver_sql("PRAGMA quick_check").scalar()
            if ok != "ok":
                out.append(f"{which}: quick_check {ok}")
            out += [f"{which}: foreign key {tuple(r)}" for r in conn.exec_driver_sql("PRAGMA foreign_key_check")]
    return out


def ledger_complete(ctx) -> list[str]:
    """Every reading of an energy series after its first carries its ledger entry, which
    starts at the previous reading and is never negative; the first carries none."""
    types = ",".join(f"'{t}'" for t in ENERGY_TYPES)
    with ctx.dbs.telemetry.connect() as conn:
        bad = conn.exec_driver_sql(f"""
            SELECT series_id, ts, start_ts, prev_ts, delta_milli_wh FROM (
                SELECT r.series_id, r.ts, r.start_ts, r.delta_milli_wh,
                       LAG(r.ts) OVER (PARTITION BY r.series_id ORDER BY r.ts) AS prev_ts
                FROM readings r JOIN series_info s ON s.series_id = r.series_id
                WHERE s.metric_type IN ({types}))
            WHERE (prev_ts IS NULL AND start_ts IS NOT NULL)
               OR (prev_ts IS NOT NULL AND (start_ts IS NULL OR start_ts != prev_ts
                                            OR delta_milli_wh IS NULL OR delta_milli_wh < 0))
            LIMIT 5""").all()
    return [f"ledger entry missing or wrong at {tuple(r)}" for r in bad]


def no_orphan_series(ctx) -> list[str]:
    """Telemetry rows name series the registry knows (the two databases do not share keys)."""
    with ctx.dbs.main_reader.connect() as conn:
        points = {r[0] for r in conn.exec_driver_sql("SELECT id FROM points")}
    out = []
    with ctx.dbs.telemetry.connect() as conn:
        known = {r[0] for r in conn.exec_driver_sql("SELECT series_id FROM series_info")}
        if known - points:
            out.append(f"series_info of no point: {sorted(known - points)[:5]}")
        for table in ("readings", "aggregates", "quarantined_readings"):
            ids = {r[0] for r in conn.exec_driver_sql(f"SELECT DISTINCT series_id FROM {table}")}
            if ids - known:
                out.append(f"{table} of unknown series: {sorted(ids - known)[:5]}")
        dangling = conn.exec_driver_sql(
            "SELECT COUNT(*) FROM readings WHERE raw_event_id IS NOT NULL AND raw_event_id != -1 "
            "AND raw_event_id NOT IN (SELECT id FROM raw_events)").scalar()
        if dangling:
            out.append(f"{dangling} readings link to a raw event that is not stored")
    return out


def jobs_still_running(ctx) -> list[str]:
    with ctx.dbs.telemetry.connect() as conn:
        live = conn.exec_driver_sql("SELECT id, kind, status FROM jobs WHERE status IN ('queued', 'running')").all()
    return [f"job still {r[2]}: {r[1]} {r[0]}" for r in live]


def problems(ctx) -> list[str]:
    return (migrations_at_head(ctx) + sqlite_integrity(ctx) + ledger_complete(ctx) + no_orphan_series(ctx)
            + jobs_still_running(ctx))

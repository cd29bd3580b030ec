"""Telemetry-side SQL of the roll-up stage: plant and work-order summaries, the
members' ledger entries a group's periods are cut from, and seed 000's 31-day window.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import Connection, select

from wattline.store import bulk
from wattline.store.tables import plant_aggregates, work_order_aggregates

WINDOW_S = 31 * 86400  # seed 000's rolling window of 15-minute points

PLANT_AGGREGATE_COLUMNS = (
    "plant_id", "vendor_plant_id", "daily_energy_kwh", "monthly_energy_mwh", "yearly_energy_mwh",
    "total_energy_mwh", "current_power_kw", "last_update_time", "updated_at", "quality_flags",
)
WORK_ORDER_AGGREGATE_COLUMNS = (
    "work_order_id", "daily_energy_kwh", "monthly_energy_mwh", "yearly_energy_mwh",
    "total_energy_mwh", "current_power_kw", "last_update_time", "updated_at", "quality_flags",
)


def _ids(values) -> str:
    return ", ".join(str(int(v)) for v in values)


def series_of_assets(conn: Connection, asset_ids: Sequence[int]) -> list[tuple]:
    """(asset_id, point_key, series_id, timezone, vendor_plant_id, metric_type) of every
    series of ``asset_ids`` (the telemetry database's copy of the registry)."""
    if not asset_ids:
        return []
    return [tuple(r) for r in conn.exec_driver_sql(
        "SELECT asset_id, point_key, series_id, timezone, vendor_plant_id, metric_type FROM series_info "
        f"WHERE asset_id IN ({_ids(asset_ids)})").fetchall()]


def latest_many(conn: Connection, series_ids: Sequence[int]) -> dict[int, tuple[int, float]]:
    """Newest (ts epoch s, value) of each series that has a reading."""
    if not series_ids:
        return {}
    cte = bulk.values_cte("s", ("series_id",), [(s,) for s in series_ids])
    rows = conn.exec_driver_sql(f"""
        WITH {cte}
        SELECT r.series_id, r.ts, r.value FROM s
        JOIN readings r ON r.series_id = s.series_id
         AND r.ts = (SELECT MAX(r2.ts) FROM readings r2 WHERE r2.series_id = s.series_id)
    """).fetchall()
    return {sid: (ts, v) for sid, ts, v in rows}


def buckets_many(conn: Connection, wanted: Sequence[tuple[int, str, int]]) -> dict[tuple, tuple]:
    """Stored calendar buckets: (series_id, period, start) -> (energy milli-Wh, flags,
    split_start, split_end) for each wanted (series_id, 'day'|'month'|'year', start)."""
    if not wanted:
        return {}
    codes = {p: i for i, p in enumerate(("day", "month", "year"))}
    cte = bulk.values_cte("w", ("series_id", "pcode", "bucket_start"),
                          [(s, codes[p], b) for s, p, b in wanted])
    rows = conn.exec_driver_sql(f"""
        WITH {cte}
        SELECT a.series_id, a.period, a.bucket_start, a.energy_milli_wh, a.flags, a.split_start, a.split_end
        FROM w JOIN aggregates a ON a.series_id = w.series_id AND a.bucket_start = w.bucket_start
         AND a.period = CASE w.pcode WHEN 0 THEN 'day' WHEN 1 THEN 'month' ELSE 'year' END
    """).fetchall()
    return {(s, p, b): (e, f, ss, se) for s, p, b, e, f, ss, se in rows}


def lifetime_ledger_milli_wh(conn: Connection, series_id: int) -> int:
    """Sum of every ledger delta of the series, milli-Wh."""
    return int(conn.exec_driver_sql(
        f"SELECT COALESCE(SUM(delta_milli_wh), 0) FROM ledger WHERE series_id = {int(series_id)}"
    ).scalar() or 0)


def upsert_plant_aggregates(conn: Connection, rows: Sequence[tuple]) -> None:
    """Rows in the order of :data:`PLANT_AGGREGATE_COLUMNS`."""
    bulk.upsert(conn, plant_aggregates, PLANT_AGGREGATE_COLUMNS, rows, key=("plant_id",))


def plant_aggregate_rows(conn: Connection, plant_ids: Sequence[int]) -> list[dict]:
    if not plant_ids:
        return []
    return [dict(r) for r in conn.execute(
        select(plant_aggregates).where(plant_aggregates.c.plant_id.in_(list(plant_ids)))).mappings()]


def upsert_work_order_aggregate(conn: Connection, row: tuple) -> None:
    """One row in the order of :data:`WORK_ORDER_AGGREGATE_COLUMNS`."""
    bulk.upsert(conn, work_order_aggregates, WORK_ORDER_AGGREGATE_COLUMNS, [row], key=("work_order_id",))


def ledger_entries(conn: Connection, series_ids: Sequence[int], start_ts: int, end_ts: int) -> dict[str, np.ndarray]:
    """Ledger entries of ``series_ids`` overlapping [start_ts, end_ts): columns
    series_id, start_ts, end_ts (epoch s), delta (milli-Wh), flags."""
    names = ("series_id", "start_ts", "end_ts", "delta", "flags")
    rows = []
    if series_ids:
        result = conn.exec_driver_sql(
            "SELECT series_id, start_ts, ts, delta_milli_wh, flags FROM readings "
            f"WHERE series_id IN ({_ids(series_ids)}) AND ts > {int(start_ts)} AND start_ts < {int(end_ts)} "
            "AND delta_milli_wh IS NOT NULL")
        rows = result.cursor.fetchall()  # the driver's tuples: numpy converts them in C, Row objects not
        result.close()
    if not rows:
        return {n: np.zeros(0, np.int64) for n in names}
    arr = np.array(rows, dtype=np.int64)
    return {n: arr[:, i] for i, n in enumerate(names)}


def replace_window(conn: Connection, plant_ids: Sequence[int], now: int) -> None:
    """Copy the plants' last 31 days of 15-minute points from the readings into
    ``telemetry_15m_recent``, replacing what the window held for them."""
    if not plant_ids:
        return
    ids = _ids(plant_ids)
    since = int(now) - WINDOW_S
    conn.exec_driver_sql(f"DELETE FROM telemetry_15m_recent WHERE plant_id IN ({ids})")
    conn.exec_driver_sql(f"""
        INSERT INTO telemetry_15m_recent (plant_id, ts, total_energy_mwh, power_kw)
        SELECT s.asset_id, r.ts,
               MAX(CASE WHEN s.point_key = 'energy_total' THEN r.value / 1000.0 END),
               MAX(CASE WHEN s.point_key = 'power' THEN r.value END)
        FROM series_info s JOIN readings r ON r.series_id = s.series_id
        WHERE s.asset_id IN ({ids}) AND s.point_key IN ('energy_total', 'power') AND r.ts >= {since}
        GROUP BY s.asset_id, r.ts
    """)


def expire_window(conn: Connection, now: int) -> int:
    """Delete window rows older than 31 days (readings stay); returns rows deleted."""
    return conn.exec_driver_sql(
        f"DELETE FROM telemetry_15m_recent WHERE ts < {int(now) - WINDOW_S}").rowcount or 0

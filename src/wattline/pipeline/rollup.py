"""Summaries (seed 000): ``plant_aggregates`` and ``work_order_aggregates``.

The current-period snapshot of a plant: energy of today, this month and this year
in the plant's own timezone (from the aggregates, i.e. from the ledger), lifetime
energy (the latest reading of its cumulative counter), current power and the last
update. A work order sums its member plants. Group membership is read from the
registry with the read-only handle.
"""

from __future__ import annotations

from wattline import clock

from datetime import datetime, timezone

from sqlalchemy import Connection, Engine, select

from wattline.domain import timeutil
from wattline.domain.quality import Flag
from wattline.store import bulk
from wattline.store.tables import (
    assets, group_members, groups, plant_aggregates, work_order_aggregates,
)

ENERGY_KEYS = ("energy_total", "power")  # preferred source of a plant's energy, in order


def refresh_summaries(conn: Connection, main_reader: Engine, asset_ids, now: int | None = None) -> None:
    as_of = clock.now_s() if now is None else int(now)
    with main_reader.connect() as mconn:
        plants = [r[0] for r in mconn.execute(
            select(assets.c.id).where(assets.c.id.in_(sorted(asset_ids)), assets.c.kind == "plant"))]
        orders = sorted({r[0] for r in mconn.execute(
            select(group_members.c.group_id).join(groups, groups.c.id == group_members.c.group_id)
            .where(groups.c.kind == "work_order", group_members.c.asset_id.in_(plants)))}) if plants else []
        members = {}
        for g in orders:
            members[g] = [r[0] for r in mconn.execute(
                select(group_members.c.asset_id).where(group_members.c.group_id == g))]
    refresh_plants(conn, plants, as_of)
    for g in orders:
        refresh_work_order(conn, g, members[g])


def refresh_plants(conn: Connection, plant_ids: list[int], as_of: int) -> None:
    """Recompute ``plant_aggregates`` rows of many plants with a handful of queries."""
    if not plant_ids:
        return
    ids = ", ".join(str(int(p)) for p in plant_ids)
    info = conn.exec_driver_sql(
        "SELECT asset_id, point_key, series_id, timezone, vendor_plant_id FROM series_info "
        f"WHERE asset_id IN ({ids})").fetchall()
    series: dict[int, dict[str, tuple[int, str, str | None]]] = {}
    for aid, key, sid, tz, vid in info:
        series.setdefault(aid, {})[key] = (sid, tz, vid)
    latest = _latest_many(conn, [sid for s in series.values() for k, (sid, _, _) in s.items()
                                 if k in ENERGY_KEYS])
    wanted, plan = [], {}
    for pid, pts in series.items():
        key = next((k for k in ENERGY_KEYS if k in pts), None)
        if key is None:
            continue
        sid, tz, _ = pts[key]
        d = timeutil.local_date(as_of, tz)
        starts = {
            "day": timeutil.day_bounds(d, tz)[0],
            "month": timeutil.month_bounds(d.year, d.month, tz)[0],
            "year": timeutil.year_bounds(d.year, tz)[0],
        }
        plan[pid] = (key, starts)
        wanted.extend((sid, period, start) for period, start in starts.items())
    buckets = _buckets_many(conn, wanted)
    rows = []
    for pid, (key, starts) in plan.items():
        pts = series[pid]
        sid, _tz, vendor_plant_id = pts[key]
        energy, flags = {}, 0
        for period, start in starts.items():
            b = buckets.get((sid, period, start))
            energy[period] = (b[0] or 0) if b else 0
            if b:
                flags |= b[1] | (Flag.ESTIMATED if (b[2] or b[3]) else 0)
        last_ts, total_kwh, power = None, None, None
        if "energy_total" in pts and pts["energy_total"][0] in latest:
            last_ts, total_kwh = latest[pts["energy_total"][0]]
        if "power" in pts and pts["power"][0] in latest:
            p_ts, power = latest[pts["power"][0]]
            last_ts = max(last_ts or p_ts, p_ts)
        if last_ts is None:
            continue
        if total_kwh is None:  # no lifetime counter: the ledger's lifetime sum
            total_kwh = (conn.exec_driver_sql(
                f"SELECT COALESCE(SUM(delta_milli_wh), 0) FROM ledger WHERE series_id = {int(sid)}"
            ).scalar() or 0) / 1e6
        rows.append((
            pid, vendor_plant_id or "",
            round(energy["day"] / 1e6, 3), round(energy["month"] / 1e9, 3), round(energy["year"] / 1e9, 3),
            round(total_kwh / 1000.0, 3), None if power is None else round(power, 3),
            datetime.fromtimestamp(last_ts, timezone.utc), clock.now_dt(), int(flags),
        ))
    bulk.upsert(conn, plant_aggregates, (
        "plant_id", "vendor_plant_id", "daily_energy_kwh", "monthly_energy_mwh", "yearly_energy_mwh",
        "total_energy_mwh", "current_power_kw", "last_update_time", "updated_at", "quality_flags",
    ), rows, key=("plant_id",))


def _latest_many(conn: Connection, series_ids: list[int]) -> dict[int, tuple[int, float]]:
    """Newest (ts, value) of each series."""
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


def _buckets_many(conn: Connection, wanted: list[tuple[int, str, int]]) -> dict[tuple, tuple]:
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


def refresh_work_order(conn: Connection, work_order_id: int, plant_ids: list[int]) -> None:
    rows = conn.execute(select(plant_aggregates).where(plant_aggregates.c.plant_id.in_(plant_ids))).mappings().all()
    if not rows:
        return

    def total(col: str) -> float:
        return round(sum(r[col] or 0 for r in rows), 3)

    flags = 0
    for r in rows:
        flags |= r["quality_flags"]
    row = (
        work_order_id, total("daily_energy_kwh"), total("monthly_energy_mwh"), total("yearly_energy_mwh"),
        total("total_energy_mwh"),
        total("current_power_kw") if any(r["current_power_kw"] is not None for r in rows) else None,
        max(_aware(r["last_update_time"]) for r in rows), clock.now_dt(), flags,
    )
    bulk.upsert(conn, work_order_aggregates, (
        "work_order_id", "daily_energy_kwh", "monthly_energy_mwh", "yearly_energy_mwh",
        "total_energy_mwh", "current_power_kw", "last_update_time", "updated_at", "quality_flags",
    ), [row], key=("work_order_id",))


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)

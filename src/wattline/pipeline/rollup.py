"""Summaries (seed 000): ``plant_aggregates`` and ``work_order_aggregates``.

The current-period snapshot of a plant: energy of today, this month and this year
in the plant's own timezone (from the aggregates, i.e. from the ledger), lifetime
energy (the latest reading of its cumulative counter), current power and the last
update. A work order sums its member plants. Group membership is read from the
registry with the read-only handle.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from sqlalchemy import Connection, Engine, select

from wattline.domain import timeutil
from wattline.pipeline.quality import Flag
from wattline.store import bulk
from wattline.store.tables import (
    aggregates, assets, group_members, groups, plant_aggregates, readings, series_info,
    work_order_aggregates,
)

ENERGY_KEYS = ("energy_total", "power")  # preferred source of a plant's energy, in order


def refresh_summaries(conn: Connection, main_reader: Engine, asset_ids, now: int | None = None) -> None:
    as_of = int(time.time()) if now is None else int(now)
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
    for p in plants:
        refresh_plant(conn, p, as_of)
    for g in orders:
        refresh_work_order(conn, g, members[g])


def _series(conn: Connection, plant_id: int) -> dict[str, tuple[int, str, str | None]]:
    rows = conn.execute(
        select(series_info.c.point_key, series_info.c.series_id, series_info.c.timezone,
               series_info.c.vendor_plant_id).where(series_info.c.asset_id == plant_id)).all()
    return {k: (s, tz, v) for k, s, tz, v in rows}


def _latest(conn: Connection, series_id: int):
    return conn.execute(
        select(readings.c.ts, readings.c.value).where(readings.c.series_id == series_id)
        .order_by(readings.c.ts.desc()).limit(1)).first()


def _bucket(conn: Connection, series_id: int, period: str, start: int):
    return conn.execute(
        select(aggregates.c.energy_milli_wh, aggregates.c.flags, aggregates.c.split_start,
               aggregates.c.split_end)
        .where(aggregates.c.series_id == series_id, aggregates.c.period == period,
               aggregates.c.bucket_start == start)).first()


def refresh_plant(conn: Connection, plant_id: int, as_of: int) -> None:
    series = _series(conn, plant_id)
    key = next((k for k in ENERGY_KEYS if k in series), None)
    if key is None:
        return
    sid, tz, vendor_plant_id = series[key]
    d = timeutil.local_date(as_of, tz)
    starts = {
        "day": timeutil.day_bounds(d, tz)[0],
        "month": timeutil.month_bounds(d.year, d.month, tz)[0],
        "year": timeutil.year_bounds(d.year, tz)[0],
    }
    energy, flags = {}, 0
    for period, start in starts.items():
        row = _bucket(conn, sid, period, start)
        energy[period] = (row[0] or 0) if row else 0
        if row:
            flags |= row[1] | (Flag.ESTIMATED if (row[2] or row[3]) else 0)
    last_ts = None
    total_kwh = None
    if "energy_total" in series:
        latest = _latest(conn, series["energy_total"][0])
        if latest:
            last_ts, total_kwh = latest
    power = None
    if "power" in series:
        latest_p = _latest(conn, series["power"][0])
        if latest_p:
            power = latest_p[1]
            last_ts = max(last_ts or latest_p[0], latest_p[0])
    if last_ts is None:
        return
    if total_kwh is None:  # no lifetime counter: the ledger's lifetime sum
        total_kwh = (conn.exec_driver_sql(
            f"SELECT COALESCE(SUM(delta_milli_wh), 0) FROM ledger WHERE series_id = {int(sid)}"
        ).scalar() or 0) / 1e6
    row = (
        plant_id, vendor_plant_id or "",
        round(energy["day"] / 1e6, 3), round(energy["month"] / 1e9, 3), round(energy["year"] / 1e9, 3),
        round(total_kwh / 1000.0, 3), None if power is None else round(power, 3),
        datetime.fromtimestamp(last_ts, timezone.utc), datetime.now(timezone.utc), int(flags),
    )
    bulk.upsert(conn, plant_aggregates, (
        "plant_id", "vendor_plant_id", "daily_energy_kwh", "monthly_energy_mwh", "yearly_energy_mwh",
        "total_energy_mwh", "current_power_kw", "last_update_time", "updated_at", "quality_flags",
    ), [row], key=("plant_id",))


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
        max(_aware(r["last_update_time"]) for r in rows), datetime.now(timezone.utc), flags,
    )
    bulk.upsert(conn, work_order_aggregates, (
        "work_order_id", "daily_energy_kwh", "monthly_energy_mwh", "yearly_energy_mwh",
        "total_energy_mwh", "current_power_kw", "last_update_time", "updated_at", "quality_flags",
    ), [row], key=("work_order_id",))


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)

"""Per-point 5-minute and daily aggregates (seed 003 ``point_readings_agg_5m`` /
``point_readings_agg_daily``), the reads of the historical API, and the SQL of the
daily catch-up and of raw-reading retention.

No new tables: a point is a series (``points.id`` = ``series_id``), and

* its **5-minute** buckets are cut from its readings and ledger entries on read
  (:func:`store.fine_buckets.fixed_on_read`, the local wall clock of the system);
* its **daily** buckets are the stored local-day rows of ``aggregates``
  (``period = 'day'``), which the pipeline keeps up to date as readings arrive and
  ``wattline points daily --catchup|--clear`` fills or re-derives.

Both have the seed's fields: ``min``, ``max``, ``avg`` (= sum / count), ``sum`` (of
the values), ``count`` (of readings), plus ``energy_milli_wh`` (from the ledger:
rule 1, never max - min). :data:`POINT_READINGS_AGG_DAILY_VIEW` is the seed-shaped
view over ``aggregates`` for a migration (not created here: the lead owns schema).

Retention (``organizations.raw_retention_days``): :func:`delete_readings_before`
deletes whole local days of raw readings; their ledger entries go with them (they
live on the reading row), the stored day/month/year aggregates stay.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
from sqlalchemy import Connection, Engine, and_, delete, func, select

from wattline.store import fine_buckets
from wattline.store.tables import (
    aggregates, assets, jobs, main_metadata, organizations, points, readings,
    series_info, systems, telemetry_metadata,
)

#: seed 003's daily table as a view of the stored local days (for a future migration)
POINT_READINGS_AGG_DAILY_VIEW = """
CREATE VIEW point_readings_agg_daily AS
SELECT si.asset_id AS system_id, si.point_key, a.bucket_start AS day_start, a.bucket_end AS day_end,
       a.value_min AS min, a.value_max AS max,
       CASE WHEN a.value_count > 0 THEN a.value_sum / a.value_count END AS avg,
       a.value_sum AS sum, a.value_count AS count, a.energy_milli_wh
FROM aggregates a JOIN series_info si ON si.series_id = a.series_id
WHERE a.period = 'day'
"""

#: local-day grouping of reading instants for the catch-up: every zone's UTC offset
#: is a multiple of 15 minutes, so a 15-minute slot never straddles a local midnight
SLOT_S = 900


def _avg(vsum, vcount):
    return None if vsum is None or not vcount else float(vsum) / int(vcount)


# ---------------------------------------------------------------- main database reads


def system_points(conn: Connection, system_ids: Sequence[int]) -> dict[int, dict[str, dict]]:
    """system id -> point key -> {series_id, metric_type, unit} of the systems' points."""
    out: dict[int, dict[str, dict]] = {int(s): {} for s in system_ids}
    if not out:
        return out
    for aid, sid, key, mt, unit in conn.execute(
            select(points.c.asset_id, points.c.id, points.c.key, points.c.metric_type, points.c.unit)
            .where(points.c.asset_id.in_(list(out)))):
        out[aid][key] = {"series_id": sid, "metric_type": mt, "unit": unit}
    return out


def retention_of_systems(conn: Connection) -> list[dict]:
    """Systems of organizations with a raw retention: system_id, organization_id,
    retention_days, timezone (the system's), by system id."""
    q = (select(systems.c.asset_id.label("system_id"), assets.c.organization_id,
                organizations.c.raw_retention_days.label("retention_days"), assets.c.timezone)
         .join(assets, assets.c.id == systems.c.asset_id)
         .join(organizations, organizations.c.id == assets.c.organization_id)
         .where(organizations.c.raw_retention_days.is_not(None))
         .order_by(systems.c.asset_id))
    return [dict(r) for r in conn.execute(q).mappings()]


def series_of_assets(conn: Connection, asset_ids: Iterable[int]) -> dict[int, list[int]]:
    """asset id -> its point (series) ids."""
    ids = [int(a) for a in asset_ids]
    out: dict[int, list[int]] = {a: [] for a in ids}
    if ids:
        for aid, sid in conn.execute(select(points.c.asset_id, points.c.id).where(points.c.asset_id.in_(ids))
                                     .order_by(points.c.id)):
            out[aid].append(sid)
    return out


# ---------------------------------------------------------------- telemetry reads


def raw_rows(conn: Connection, series_ids: Sequence[int], start_ts: int, end_ts: int) -> list[tuple]:
    """(series_id, ts, value) of the readings in [start_ts, end_ts), by ts."""
    if not series_ids:
        return []
    r = readings.c
    return [tuple(x) for x in conn.execute(
        select(r.series_id, r.ts, r.value)
        .where(r.series_id.in_([int(s) for s in series_ids]), r.ts >= int(start_ts), r.ts < int(end_ts))
        .order_by(r.ts, r.series_id))]


def raw_row_count(conn: Connection, series_ids: Sequence[int], start_ts: int, end_ts: int) -> int:
    """How many readings :func:`raw_rows` would return (asked first, so a too-wide raw
    request is refused before its rows are read)."""
    if not series_ids:
        return 0
    r = readings.c
    return int(conn.execute(
        select(func.count()).select_from(readings)
        .where(r.series_id.in_([int(s) for s in series_ids]), r.ts >= int(start_ts), r.ts < int(end_ts))
    ).scalar_one())


def five_minute_rows(conn: Connection, series_id: int, tz: str, start_ts: int, end_ts: int) -> list[dict]:
    """The 5-minute buckets (local wall clock of ``tz``) of one series that overlap
    [start_ts, end_ts): start, end, min, max, avg, sum, count, energy_milli_wh (None
    without a ledger entry), by start. Computed from readings and ledger on read."""
    return [{k: v for k, v in r.items() if k != "series_id"}
            for r in five_minute_rows_many(conn, [series_id], tz, start_ts, end_ts)]


def five_minute_rows_many(conn: Connection, series_ids: Sequence[int], tz: str, start_ts: int,
                          end_ts: int) -> list[dict]:
    """:func:`five_minute_rows` of several series on one local clock, read together;
    each row also has its ``series_id``; by series, then start."""
    bk = fine_buckets.fixed_on_read_many(conn, list(series_ids), "5min", int(start_ts), int(end_ts), tz)
    order = np.lexsort((bk["start"], bk["series_id"]))
    # Python lists once: indexing numpy arrays element by element cost most of a chart's 24 h
    cols = {k: bk[k][order].tolist() for k in ("series_id", "start", "end", "vmin", "vmax", "vsum", "vcount",
                                               "energy", "ledger_count")}
    out = []
    for sid, start, end, vmin, vmax, vsum, n, energy, lc in zip(*cols.values()):
        n = int(n)
        out.append({
            "series_id": int(sid), "start": int(start), "end": int(end),
            "min": float(vmin) if n else None, "max": float(vmax) if n else None,
            "sum": float(vsum) if n else None, "avg": float(vsum) / n if n else None,
            "count": n,
            "energy_milli_wh": int(energy) if int(lc) else None,
        })
    return out


def daily_rows(conn: Connection, series_ids: Sequence[int], start_ts: int, end_ts: int) -> list[dict]:
    """Stored local-day buckets of the series that overlap [start_ts, end_ts):
    series_id, start, end, min, max, avg, sum, count, energy_milli_wh, by start."""
    if not series_ids:
        return []
    a = aggregates.c
    rows = conn.execute(
        select(a.series_id, a.bucket_start, a.bucket_end, a.value_min, a.value_max, a.value_sum, a.value_count,
               a.energy_milli_wh, a.ledger_count)
        .where(a.period == "day", a.series_id.in_([int(s) for s in series_ids]),
               a.bucket_end > int(start_ts), a.bucket_start < int(end_ts))
        .order_by(a.bucket_start, a.series_id))
    return [{"series_id": sid, "start": s, "end": e, "min": vmin, "max": vmax, "sum": vsum,
             "avg": _avg(vsum, n), "count": n or 0, "energy_milli_wh": energy if lc else None}
            for sid, s, e, vmin, vmax, vsum, n, energy, lc in rows]


def all_series(conn: Connection) -> dict[int, str]:
    """series id -> timezone of every series the telemetry database knows."""
    return {sid: tz for sid, tz in conn.execute(select(series_info.c.series_id, series_info.c.timezone))}


def reading_slots(conn: Connection, series_id: int, from_ts: int | None = None) -> np.ndarray:
    """Distinct :data:`SLOT_S` slots (their start, epoch s) holding readings of the series."""
    slot = (readings.c.ts - readings.c.ts % SLOT_S).label("slot")
    q = select(slot).where(readings.c.series_id == int(series_id)).group_by(slot).order_by(slot)
    if from_ts is not None:
        q = q.where(readings.c.ts >= int(from_ts))
    return np.array([s for (s,) in conn.execute(q)], np.int64)


def stored_day_starts(conn: Connection, series_id: int) -> set[int]:
    """Starts of the stored local-day aggregates of the series."""
    return {s for (s,) in conn.execute(select(aggregates.c.bucket_start).where(
        aggregates.c.series_id == int(series_id), aggregates.c.period == "day"))}


def reading_span(conn: Connection, series_id: int) -> tuple[int, int] | None:
    """(first, last) reading instant of the series, or None without readings."""
    lo, hi = conn.execute(select(func.min(readings.c.ts), func.max(readings.c.ts))
                          .where(readings.c.series_id == int(series_id))).one()
    return None if lo is None else (int(lo), int(hi))


def count_readings_before(conn: Connection, series_ids: Sequence[int], cutoff_ts: int) -> int:
    if not series_ids:
        return 0
    return int(conn.execute(select(func.count()).select_from(readings).where(
        readings.c.series_id.in_([int(s) for s in series_ids]), readings.c.ts < int(cutoff_ts))).scalar())


# ---------------------------------------------------------------- retention


def delete_readings_before(conn: Connection, series_ids: Sequence[int], cutoff_ts: int) -> int:
    """Delete the raw readings (and the ledger entries ending at them) of the series
    older than ``cutoff_ts`` (a local midnight); returns rows deleted. Aggregates stay."""
    if not series_ids:
        return 0
    return int(conn.execute(delete(readings).where(
        and_(readings.c.series_id.in_([int(s) for s in series_ids]), readings.c.ts < int(cutoff_ts)))).rowcount)


# ---------------------------------------------------------------- admin: database overview


def row_counts(engine: Engine, database: str) -> list[dict]:
    """Rows of every table of one database (``main`` | ``telemetry``), by name."""
    metadata = main_metadata if database == "main" else telemetry_metadata
    out = []
    with engine.connect() as conn:
        for name in sorted(metadata.tables):
            n = conn.execute(select(func.count()).select_from(metadata.tables[name])).scalar()
            out.append({"database": database, "name": name, "rows": int(n or 0)})
    return out


def last_job(engine: Engine, kind: str) -> dict | None:
    """The newest ``jobs`` row of ``kind`` (id, status, params, result, error, times), or None."""
    with engine.connect() as conn:
        row = conn.execute(select(jobs.c.id, jobs.c.kind, jobs.c.status, jobs.c.params, jobs.c.result,
                                  jobs.c.error, jobs.c.created_at, jobs.c.updated_at)
                           .where(jobs.c.kind == kind).order_by(jobs.c.created_at.desc()).limit(1)
                           ).mappings().first()
    return dict(row) if row else None

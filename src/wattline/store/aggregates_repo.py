"""Stored buckets (``aggregates``: local day, month, year per series) and the ledger
inputs they are computed from.

Rows are tuples in ``AGG_COLUMNS`` order; the pipeline computes them. Two ways to
write: :func:`upsert_buckets` replaces recomputed rows, :func:`merge_buckets`
combines rows over new, disjoint entries and readings with the stored ones inside
the upsert itself (nothing is read back).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sqlalchemy import Connection

from wattline.store import bulk
from wattline.store.tables import aggregates

AGG_COLUMNS = (
    "series_id", "period", "bucket_start", "bucket_end", "energy_milli_wh", "value_min",
    "value_max", "value_sum", "value_count", "value_last", "last_ts", "ledger_count", "flags",
    "split_start", "split_end", "on_time_s", "hc_energy_milli_wh",
)
AGG_KEY = ("series_id", "period", "bucket_start")
# what read_bucket_rows returns, in order
BUCKET_READ_COLUMNS = (
    "series_id", "bucket_start", "bucket_end", "energy_milli_wh", "ledger_count", "value_min", "value_max",
    "value_sum", "value_count", "value_last", "last_ts", "flags", "split_start", "split_end",
    "on_time_s", "hc_energy_milli_wh",
)
STORED_PERIODS = ("day", "month", "year")


def upsert_buckets(conn: Connection, rows: Sequence[tuple]) -> int:
    """Write recomputed buckets over the stored ones; returns rows written."""
    bulk.upsert(conn, aggregates, AGG_COLUMNS, rows, key=AGG_KEY)
    return len(rows)


def merge_buckets(conn: Connection, rows: Sequence[tuple]) -> int:
    """Combine buckets over entries and readings disjoint from the stored ones into
    the stored buckets (:func:`merge_expressions`); returns rows written."""
    bulk.upsert(conn, aggregates, AGG_COLUMNS, rows, key=AGG_KEY, combine=merge_expressions(conn.dialect.name))
    return len(rows)


def merge_expressions(dialect: str) -> dict[str, str]:
    """SET expressions that combine a stored bucket with one over disjoint ledger
    entries and readings: sums, min/max, bitwise or, and the value of the latest
    reading — so the row equals a recomputation from everything (the energy exactly;
    ``value_sum`` up to float rounding). Split marks are or-ed: an entry crossing a
    bucket boundary lies wholly in one of the two sides."""
    t = aggregates.name

    def nullable_sum(c: str) -> str:  # NULL: nothing of this kind in the bucket
        return f"CASE WHEN {t}.{c} IS NULL THEN excluded.{c} WHEN excluded.{c} IS NULL THEN {t}.{c} " \
               f"ELSE {t}.{c} + excluded.{c} END"

    def extreme(c: str, fn: str) -> str:
        if dialect == "postgresql":  # LEAST/GREATEST skip NULLs
            return f"{'LEAST' if fn == 'MIN' else 'GREATEST'}({t}.{c}, excluded.{c})"
        return f"COALESCE({fn}({t}.{c}, excluded.{c}), {t}.{c}, excluded.{c})"  # SQLite: NULL if any is

    newer = f"excluded.last_ts IS NOT NULL AND ({t}.last_ts IS NULL OR excluded.last_ts >= {t}.last_ts)"
    return {
        "bucket_end": "excluded.bucket_end",
        "energy_milli_wh": nullable_sum("energy_milli_wh"),
        "value_min": extreme("value_min", "MIN"),
        "value_max": extreme("value_max", "MAX"),
        "value_sum": nullable_sum("value_sum"),
        "value_count": f"{t}.value_count + excluded.value_count",
        "value_last": f"CASE WHEN {newer} THEN excluded.value_last ELSE {t}.value_last END",
        "last_ts": f"CASE WHEN {newer} THEN excluded.last_ts ELSE {t}.last_ts END",
        "ledger_count": f"{t}.ledger_count + excluded.ledger_count",
        "flags": f"{t}.flags | excluded.flags",
        "split_start": f"{t}.split_start OR excluded.split_start",
        "split_end": f"{t}.split_end OR excluded.split_end",
        "on_time_s": nullable_sum("on_time_s"),
        "hc_energy_milli_wh": nullable_sum("hc_energy_milli_wh"),
    }


def read_bucket_rows(conn: Connection, period: str, ranges: Sequence[tuple[int, int, int]]) -> list[tuple]:
    """Stored ``period`` buckets with start in each (series_id, lo, hi) range, lo <= start < hi,
    as tuples in ``BUCKET_READ_COLUMNS`` order."""
    if period not in STORED_PERIODS:
        raise ValueError(f"only {', '.join(STORED_PERIODS)} buckets are stored, not {period!r}")
    if not ranges:
        return []
    cte = bulk.values_cte("t", ("series_id", "lo", "hi"), ranges)
    return conn.exec_driver_sql(f"""
        WITH {cte}
        SELECT a.series_id, a.bucket_start, a.bucket_end, a.energy_milli_wh, a.ledger_count,
               a.value_min, a.value_max, a.value_sum, a.value_count, a.value_last, a.last_ts,
               a.flags, a.split_start, a.split_end, a.on_time_s, a.hc_energy_milli_wh
        FROM t JOIN aggregates a ON a.series_id = t.series_id AND a.period = '{period}'
          AND a.bucket_start >= t.lo AND a.bucket_start < t.hi
    """).fetchall()


def ledger_inputs(conn: Connection, rng: dict[int, tuple[int, int]]):
    """Ledger entries overlapping, and readings inside, each series' [a, b): two dicts
    of numpy columns, (series_id, start_ts, end_ts, delta, flags, on_time) and (series_id, ts, value);
    ``on_time`` is -1 where the entry has none."""
    cte = bulk.values_cte("t", ("series_id", "a", "b"), list((s, a, b) for s, (a, b) in rng.items()))
    lc = bulk.fetch_columns(conn, f"""
        WITH {cte}
        SELECT l.series_id, l.start_ts, l.ts, l.delta_milli_wh, l.flags, COALESCE(l.on_time_s, -1) FROM t
        JOIN readings l ON l.series_id = t.series_id AND l.ts > t.a AND l.start_ts < t.b
         AND l.delta_milli_wh IS NOT NULL
    """, ("series_id", "start_ts", "end_ts", "delta", "flags", "on_time"), (np.int64,) * 6)
    rc = bulk.fetch_columns(conn, f"""
        WITH {cte}
        SELECT r.series_id, r.ts, r.value FROM t
        JOIN readings r ON r.series_id = t.series_id AND r.ts >= t.a AND r.ts < t.b
    """, ("series_id", "ts", "value"), (np.int64, np.int64, np.float64))
    return lc, rc

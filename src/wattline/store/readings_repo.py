"""Readings and the ledger entries stored on them (telemetry database).

A row of ``readings`` is one (series_id, ts, value) and the ledger entry ending at it
(``LEDGER_COLUMNS``, NULL where there is none). The pipeline is the only writer; these
are its reads and writes of that table, and of the two small tables written beside it
(``series_info``, ``quarantined_readings``).

Every id and timestamp inlined into SQL here is an integer the pipeline computed
(``bulk.values_cte``); no user text reaches the SQL.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Sequence

import numpy as np
from sqlalchemy import Connection

from wattline.store import bulk
from wattline.store.tables import LEDGER_COLUMNS, quarantined_readings, readings, series_info

READING_COLUMNS = ("series_id", "ts", "value", "raw_event_id")
SERIES_INFO_COLUMNS = ("series_id", "asset_id", "point_key", "metric_type", "timezone", "vendor_plant_id")
QUARANTINE_COLUMNS = ("series_id", "ts", "reason", "value_text", "raw_event_id", "received_at")


def upsert_series_info(conn: Connection, rows: Sequence[tuple]) -> None:
    """The telemetry side's copy of registry facts, one row per series (``SERIES_INFO_COLUMNS``)."""
    bulk.upsert(conn, series_info, SERIES_INFO_COLUMNS, rows, key=("series_id",))


def upsert_quarantined(conn: Connection, rows: Sequence[tuple]) -> None:
    """Rejected readings with their reason (``QUARANTINE_COLUMNS``), unique on (series, ts, reason)."""
    bulk.upsert(conn, quarantined_readings, QUARANTINE_COLUMNS, rows, key=("series_id", "ts", "reason"))


def newest_before(conn: Connection, keys: list[tuple[int, int]]) -> dict[int, tuple]:
    """For each (series_id, t): the series' newest stored reading before t, as
    (ts, value, ref_milli_wh); series without one are left out."""
    if not keys:
        return {}
    cte = bulk.values_cte("t", ("series_id", "t"), keys)
    if conn.dialect.name == "postgresql":  # one backward index scan per series
        sql = f"""
            WITH {cte}
            SELECT t.series_id, r.ts, r.value, r.ref_milli_wh FROM t
            CROSS JOIN LATERAL (SELECT ts, value, ref_milli_wh FROM readings m
                                WHERE m.series_id = t.series_id AND m.ts < t.t ORDER BY m.ts DESC LIMIT 1) r
        """
    else:
        sql = f"""
            WITH {cte}
            SELECT r.series_id, r.ts, r.value, r.ref_milli_wh FROM t
            JOIN readings r ON r.series_id = t.series_id
             AND r.ts = (SELECT MAX(m.ts) FROM readings m WHERE m.series_id = t.series_id AND m.ts < t.t)
        """
    rows = conn.exec_driver_sql(sql).fetchall()
    return {s: (ts, value, ref) for s, ts, value, ref in rows}


def values_in_ranges(conn: Connection, ranges: Sequence[tuple[int, int, int]]) -> dict[str, np.ndarray]:
    """Stored readings of each (series_id, lo, hi), lo <= ts <= hi, as columns
    ``series_id``, ``ts``, ``value`` ordered by (series_id, ts)."""
    names, dtypes = ("series_id", "ts", "value"), (np.int64, np.int64, np.float64)
    if not ranges:
        return bulk.as_columns([], names, dtypes)
    cte = bulk.values_cte("t", ("series_id", "lo", "hi"), ranges)
    return bulk.fetch_columns(conn, f"""
        WITH {cte}
        SELECT r.series_id, r.ts, r.value FROM t
        JOIN readings r ON r.series_id = t.series_id AND r.ts >= t.lo AND r.ts <= t.hi
        ORDER BY r.series_id, r.ts
    """, names, dtypes)


def entries_after(conn: Connection, series_id: int, after_ts: int, limit: int) -> list[tuple]:
    """Up to ``limit`` stored readings of a series after ``after_ts``, oldest first, as
    (ts, value, start_ts, delta_milli_wh, flags, ref_milli_wh, on_time_s)."""
    return conn.exec_driver_sql(f"""
        SELECT r.ts, r.value, r.start_ts, r.delta_milli_wh, r.flags, r.ref_milli_wh, r.on_time_s
        FROM readings r
        WHERE r.series_id = {int(series_id)} AND r.ts > {int(after_ts)}
        ORDER BY r.ts LIMIT {int(limit)}
    """).fetchall()


@contextmanager
def inserting_new_with_entries(conn: Connection, rows: Iterable[tuple]):
    """Insert readings whose keys cannot be stored yet (all newer than their series'
    newest, under the series lock), each with its ledger entry (``READING_COLUMNS`` +
    ``LEDGER_COLUMNS``), while the body runs: see :func:`bulk.inserting_new`."""
    with bulk.inserting_new(conn, readings, READING_COLUMNS + LEDGER_COLUMNS, rows):
        yield


def upsert_values(conn: Connection, rows: Sequence[tuple]) -> None:
    """Insert readings (``READING_COLUMNS``) or overwrite the value and raw link of the stored ones."""
    bulk.upsert(conn, readings, READING_COLUMNS, rows, key=("series_id", "ts"), update=("value", "raw_event_id"))


def update_entries(conn: Connection, rows: Sequence[tuple]) -> None:
    """Set the ledger entry of stored readings; each row is (*``LEDGER_COLUMNS``, series_id, ts)."""
    bulk.update(conn, readings, LEDGER_COLUMNS, ("series_id", "ts"), rows)

"""5-minute, 15-minute and hourly buckets, computed from the ledger when read.

Only local days, months and years are stored; the fine periods are cut from the
ledger entries and readings on the series' local wall clock (``domain.wallclock``)
with the same telescoping arithmetic as the stored days, so they add up to them
exactly.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import Connection

from wattline.domain import buckets as B

ON_READ_PERIODS = tuple(B.FIXED_PERIODS)


def fixed_on_read(conn: Connection, series_id: int, period: str, start_ts: int, end_ts: int,
                  tz: str) -> B.Buckets:
    """The ``period`` buckets of one series over [start_ts, end_ts), widened to whole
    buckets of the local wall clock of ``tz`` (UTC epoch seconds in and out)."""
    return fixed_on_read_many(conn, [series_id], period, start_ts, end_ts, tz)


def fixed_on_read_many(conn: Connection, series_ids: list[int], period: str, start_ts: int, end_ts: int,
                       tz: str) -> B.Buckets:
    """:func:`fixed_on_read` for several series on one local clock, in two queries (a
    composite's chart: one round trip for all its members' points, not one a series)."""
    ids = sorted({int(s) for s in series_ids})
    if end_ts <= start_ts or not ids:
        return B.empty()
    a, b = B.covering_span(period, start_ts, end_ts, tz)
    ledger_cols, reading_cols = _inputs(conn, ids, int(a), int(b))
    zones = {sid: tz for sid in ids}
    base = B.base_buckets(ledger_cols, reading_cols, zones)
    keep = (base["start"] >= a) & (base["start"] < b)  # pieces outside: partial buckets
    base = {k: v[keep] for k, v in base.items()}
    if period == "5min":
        return base
    ps, pe = B.bucket_parents(base["start"], zones, base["series_id"], period)
    return B.compose(base, ps, pe)


def _inputs(conn: Connection, series_ids: list[int], a: int, b: int):
    """Ledger entries overlapping and readings inside [a, b) of the series."""
    where = f"series_id IN ({', '.join(str(int(s)) for s in series_ids)})"
    led = _fetch(conn, f"""
        SELECT series_id, start_ts, ts, delta_milli_wh, flags, COALESCE(on_time_s, -1) FROM readings
        WHERE {where} AND ts > {a} AND start_ts < {b} AND delta_milli_wh IS NOT NULL
    """)
    rd = _fetch(conn, f"""
        SELECT series_id, ts, value FROM readings WHERE {where} AND ts >= {a} AND ts < {b}
    """)
    ledger_cols = _cols(led, ("series_id", "start_ts", "end_ts", "delta", "flags", "on_time"), (np.int64,) * 6)
    reading_cols = _cols(rd, ("series_id", "ts", "value"), (np.int64, np.int64, np.float64))
    return ledger_cols, reading_cols


def _fetch(conn: Connection, sql: str) -> list[tuple]:
    """Plain tuples from the driver (numpy converts them in C; Row objects cost more)."""
    result = conn.exec_driver_sql(sql)
    rows = result.cursor.fetchall()
    result.close()
    return rows


def _cols(rows, names, dtypes) -> dict[str, np.ndarray]:
    if not rows:
        return {n: np.zeros(0, d) for n, d in zip(names, dtypes)}
    # every integer here (ids, epoch s, milli-Wh) is far below 2**53: the float64 round trip is exact
    arr = np.array(rows, dtype=np.float64)
    return {n: arr[:, i].astype(d) for i, (n, d) in enumerate(zip(names, dtypes))}

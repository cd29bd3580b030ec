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
    if end_ts <= start_ts:
        return B.empty()
    a, b = B.covering_span(period, start_ts, end_ts, tz)
    ledger_cols, reading_cols = _inputs(conn, int(series_id), int(a), int(b))
    base = B.base_buckets(ledger_cols, reading_cols, {series_id: tz})
    keep = (base["start"] >= a) & (base["start"] < b)  # pieces outside: partial buckets
    base = {k: v[keep] for k, v in base.items()}
    if period == "5min":
        return base
    ps, pe = B.bucket_parents(base["start"], {series_id: tz}, base["series_id"], period)
    return B.compose(base, ps, pe)


def _inputs(conn: Connection, series_id: int, a: int, b: int):
    """Ledger entries overlapping and readings inside [a, b) of one series."""
    led = _fetch(conn, f"""
        SELECT series_id, start_ts, ts, delta_milli_wh, flags, COALESCE(on_time_s, -1) FROM readings
        WHERE series_id = {series_id} AND ts > {a} AND start_ts < {b} AND delta_milli_wh IS NOT NULL
    """)
    rd = _fetch(conn, f"""
        SELECT series_id, ts, value FROM readings WHERE series_id = {series_id} AND ts >= {a} AND ts < {b}
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

"""Totals of one series' ledger entries over a span (telemetry database): what
``wattline import-legacy`` compares with the old system's totals."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from wattline.store.tables import readings


@dataclass(frozen=True)
class LedgerTotal:
    """``energy_milli_wh``: sum of the entries' deltas (milli-Wh); ``on_time_s``: sum of
    their on-time (s), None while no entry knows it; ``entries``: how many."""

    energy_milli_wh: int
    on_time_s: int | None
    entries: int


def series_total(conn: Connection, series_id: int, after_ts: int, until_ts: int) -> LedgerTotal:
    """The entries of ``series_id`` ending in (after_ts, until_ts] (UTC epoch s)."""
    row = conn.execute(
        select(func.coalesce(func.sum(readings.c.delta_milli_wh), 0), func.sum(readings.c.on_time_s),
               func.count(readings.c.delta_milli_wh))
        .where(readings.c.series_id == int(series_id), readings.c.ts > int(after_ts),
               readings.c.ts <= int(until_ts), readings.c.delta_milli_wh.is_not(None))).one()
    return LedgerTotal(int(row[0]), None if row[1] is None else int(row[1]), int(row[2]))

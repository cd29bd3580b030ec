"""Time partitions of ``readings`` on PostgreSQL: one per UTC calendar year.

ARCHITECTURE.md asks for readings partitioned by time on PostgreSQL: old years can be
detached or dropped whole, and queries over a time range across all series (the
31-day window, the fleet's telemetry_15m) scan only the partitions of that range.
The primary key (series_id, ts) still keeps each series' data together inside a year.

A year's partition is created the first time a reading of that year arrives, in a
short transaction of its own before the batch's (DDL on the parent table takes a
lock that must not wait inside a writer holding series locks). There is no default
partition: a row never lands somewhere it would later have to be moved out of.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import Engine

PARTITION_LOCK_KEY = 0x7761_7474  # advisory lock serialising partition creation ("watt")


def year_bounds_utc(year: int) -> tuple[int, int]:
    """Epoch seconds of 1 January of ``year`` and of the next year, UTC."""
    start = np.datetime64(f"{year:04d}-01-01", "s").astype(np.int64)
    end = np.datetime64(f"{year + 1:04d}-01-01", "s").astype(np.int64)
    return int(start), int(end)


def partition_name(year: int) -> str:
    return f"readings_y{year}"


def years_of(ts: np.ndarray) -> set[int]:
    """UTC calendar years of epoch-second timestamps."""
    if not len(ts):
        return set()
    years = np.unique(np.asarray(ts, np.int64).astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64))
    return {int(y) + 1970 for y in years}


class ReadingPartitions:
    """Creates the missing yearly partitions of one PostgreSQL telemetry database
    (and remembers the ones that exist, so a batch of known years costs nothing)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.enabled = engine.dialect.name == "postgresql"
        self._known: set[int] | None = None

    def ensure(self, ts: np.ndarray) -> None:
        if not self.enabled:
            return
        if self._known is None:
            self._known = self._existing()
        missing = years_of(ts) - self._known
        if not missing:
            return
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PARTITION_LOCK_KEY})")
            for year in sorted(missing):
                a, b = year_bounds_utc(year)
                conn.exec_driver_sql(
                    f"CREATE TABLE IF NOT EXISTS {partition_name(year)} PARTITION OF readings "
                    f"FOR VALUES FROM ({a}) TO ({b})")
        self._known |= missing

    def _existing(self) -> set[int]:
        with self.engine.connect() as conn:
            names = conn.exec_driver_sql(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'readings'").scalars().all()
        return {int(n.removeprefix("readings_y")) for n in names if n.startswith("readings_y")}

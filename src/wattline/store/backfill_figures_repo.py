"""What a finished backfill reports: the plant's summary row and the seed's
cumulative figures (energy of whole periods before an instant)."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, func, select

from wattline.store.tables import aggregates, plant_aggregates


def plant_summary(conn: Connection, plant_id: int) -> dict | None:
    """The plant's ``plant_aggregates`` row (read in the caller's transaction), or None."""
    row = conn.execute(select(plant_aggregates).where(plant_aggregates.c.plant_id == plant_id)).mappings().first()
    return None if row is None else dict(row)


def energy_before(telemetry: Engine, series_id: int, periods: list[tuple[str, int]]) -> list[int]:
    """For each (period, before): milli-Wh of the series' ``period`` buckets (day, month,
    year) starting before ``before`` (epoch s)."""
    a = aggregates.c
    with telemetry.connect() as conn:
        return [int(conn.execute(select(func.coalesce(func.sum(a.energy_milli_wh), 0)).where(
                    a.series_id == series_id, a.period == period, a.bucket_start < int(before))).scalar())
                for period, before in periods]

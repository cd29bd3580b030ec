"""Latest values from the database: the newest stored reading of each series.

Always right (it is the data itself); costs one index lookup per series
(primary key (series_id, ts), read backwards). ``write`` has nothing to do: the
pipeline's transaction already stored the readings.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from sqlalchemy import Engine, select

from wattline.domain.latest import LatestRead, LatestValue, LatestValueStore
from wattline.store.tables import readings


class DatabaseLatestValues:
    """:class:`~wattline.domain.latest.LatestValueStore` over the readings table."""

    name = "database"

    def __init__(self, telemetry: Engine):
        self.telemetry = telemetry

    def write(self, values: Iterable[LatestValue]) -> None:  # noqa: ARG002 - stored by the ingest itself
        return None

    def read(self, asset_id: int, series_ids: list[int]) -> dict[int, LatestValue]:
        out: dict[int, LatestValue] = {}
        if not series_ids:
            return out
        with self.telemetry.connect() as conn:
            for sid in series_ids:
                row = conn.execute(select(readings.c.ts, readings.c.value).where(readings.c.series_id == sid)
                                   .order_by(readings.c.ts.desc()).limit(1)).first()
                if row is not None:
                    out[sid] = LatestValue(asset_id, sid, int(row[0]), float(row[1]))
        return out

    def read_assets(self, wanted: Mapping[int, Sequence[int]]) -> LatestRead:
        out: dict[int, LatestValue] = {}
        for asset_id, series_ids in wanted.items():
            out.update(self.read(asset_id, list(series_ids)))
        return LatestRead(out, "database")


def open_latest_values(telemetry: Engine, redis_url: str | None = None,
                       namespace: str = "", main_reader: Engine | None = None) -> LatestValueStore:
    """Redis (falling back to the database) when ``redis_url`` is set, else the database.

    ``main_reader`` (the registry, read-only) lets Redis keep systems in their own
    shape (``latest:system:{id}``, one field per point key) and the composites each
    system feeds (``subscriptions:system:{id}``); without it every asset is kept by
    series id."""
    database = DatabaseLatestValues(telemetry)
    if not redis_url:
        return database
    from wattline.store.latest_redis import RedisLatestValues

    return RedisLatestValues.from_url(redis_url, namespace, fallback=database, main_reader=main_reader)

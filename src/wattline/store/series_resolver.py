"""The registry's read-only answer to "which series is this point": sources ask it.

Implements :class:`wattline.domain.sources.SeriesResolver` over the main database's
read-only handle. Nothing is cached across calls, so a changed point configuration
is seen at once; a caller that resolves many points at a time loads them in one
query with :func:`load_series`.
"""

from __future__ import annotations

from typing import Iterable

from sqlalchemy import Engine, select

from wattline.domain.metrics import MetricType
from wattline.domain.sources import ResolvedSeries, StaticSeriesResolver
from wattline.store.tables import assets, points

_COLUMNS = (points.c.id, points.c.asset_id, points.c.key, points.c.metric_type, points.c.expected_interval_s,
            points.c.vendor_field, assets.c.timezone)


def _resolved(row) -> ResolvedSeries:
    return ResolvedSeries(series_id=row.id, asset_id=row.asset_id, point_key=row.key,
                          metric_type=MetricType(row.metric_type), timezone=row.timezone,
                          expected_interval_s=row.expected_interval_s, vendor_field=row.vendor_field)


class RegistrySeriesResolver:
    """``resolve(asset_id, point_key)`` with one query per call, over ``main_reader``."""

    def __init__(self, main_reader: Engine):
        self._engine = main_reader

    def resolve(self, asset_id: int, point_key: str) -> ResolvedSeries | None:
        q = (select(*_COLUMNS).join(assets, assets.c.id == points.c.asset_id)
             .where(points.c.asset_id == int(asset_id), points.c.key == point_key))
        with self._engine.connect() as conn:
            row = conn.execute(q).first()
        return _resolved(row) if row is not None else None


def load_series(conn_or_engine, asset_ids: Iterable[int]) -> list[ResolvedSeries]:
    """Every point of the given assets, in one query."""
    ids = sorted({int(a) for a in asset_ids})
    if not ids:
        return []
    q = (select(*_COLUMNS).join(assets, assets.c.id == points.c.asset_id)
         .where(points.c.asset_id.in_(ids)).order_by(points.c.id))
    if isinstance(conn_or_engine, Engine):
        with conn_or_engine.connect() as conn:
            return [_resolved(r) for r in conn.execute(q)]
    return [_resolved(r) for r in conn_or_engine.execute(q)]


def preloaded_resolver(main_reader: Engine, asset_ids: Iterable[int]) -> StaticSeriesResolver:
    """A resolver answering from the points of ``asset_ids`` as they are now."""
    return StaticSeriesResolver(load_series(main_reader, asset_ids))

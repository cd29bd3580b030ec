"""What the pipeline knows about each series, read from the registry (read-only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from wattline.domain.metrics import DEFAULT_PLAUSIBLE_RANGE, MetricType
from wattline.pipeline.ledger import MILLI_WH_PER_KWH, SeriesRules
from wattline.pipeline.quality import Method
from wattline.store import series_catalog
from wattline.store.engines import DbEngine


class UnknownSeriesError(LookupError):
    pass


@dataclass(frozen=True)
class SeriesConfig:
    series_id: int
    asset_id: int
    asset_kind: str
    point_key: str
    metric_type: MetricType
    timezone: str
    vendor_plant_id: str | None
    reset_ratio: float
    wrap_kwh: float | None
    expected_interval_s: int
    plausible_min: float
    plausible_max: float

    @property
    def rules(self) -> SeriesRules | None:
        """Ledger rules, or None for series without energy (soc, voltage...)."""
        method = {
            MetricType.COUNTER: Method.COUNTER,
            MetricType.INTERVAL_ENERGY: Method.INTERVAL_ENERGY,
            MetricType.POWER: Method.POWER_INTEGRATION,
        }.get(self.metric_type)
        if method is None:
            return None
        wrap = int(round(self.wrap_kwh * MILLI_WH_PER_KWH)) if self.wrap_kwh else None
        return SeriesRules(method, self.reset_ratio, wrap, self.expected_interval_s)

    @classmethod
    def from_row(cls, row: tuple) -> SeriesConfig:
        """From a ``store.series_catalog.CONFIG_COLUMNS`` tuple; an unset plausible
        bound is the metric's default."""
        f = dict(zip(series_catalog.CONFIG_COLUMNS, row))
        mt = MetricType(f["metric_type"])
        lo, hi = DEFAULT_PLAUSIBLE_RANGE[mt]
        f["metric_type"] = mt
        f["plausible_min"] = lo if f["plausible_min"] is None else f["plausible_min"]
        f["plausible_max"] = hi if f["plausible_max"] is None else f["plausible_max"]
        return cls(**f)


class SeriesCatalog:
    """Series configs, fresh for every batch.

    :meth:`get_many` re-reads the registry rows of the batch's series in one query
    (by primary key: ~1 ms for 1,000 series, against ~0.5 s to ingest their
    readings) and rebuilds only the configs whose row changed. So a point's new
    plausible range or reset ratio, or its asset's new timezone, applies from the next
    batch on, whichever process changed it, with no cache to invalidate and no
    restart. A config that did not change stays the same object, so callers can tell
    a change by identity.
    """

    def __init__(self, main_reader: DbEngine):
        self._engine = main_reader
        self._rows: dict[int, tuple] = {}
        self._by_id: dict[int, SeriesConfig] = {}

    def get_many(self, ids: Iterable[int]) -> dict[int, SeriesConfig]:
        wanted = {int(i) for i in ids}
        found = set()
        for row in series_catalog.read_configs(self._engine, wanted):
            sid = row[0]
            found.add(sid)
            if self._rows.get(sid) != row:
                self._rows[sid] = row
                self._by_id[sid] = SeriesConfig.from_row(row)
        missing = wanted - found
        if missing:
            for sid in missing:  # deleted from the registry
                self._rows.pop(sid, None)
                self._by_id.pop(sid, None)
            raise UnknownSeriesError(f"unknown series id(s): {sorted(missing)[:10]}")
        return {i: self._by_id[i] for i in wanted}

    def invalidate(self) -> None:
        """Forget every config (the next batch rebuilds them all)."""
        self._rows.clear()
        self._by_id.clear()

"""What the pipeline knows about each series, read from the registry (read-only)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select

from wattline.domain.metrics import DEFAULT_PLAUSIBLE_RANGE, MetricType
from wattline.domain.ledger import MILLI_WH_PER_KWH, SeriesRules
from wattline.domain.quality import Method
from wattline.store.tables import assets, points


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


class SeriesCatalog:
    """Cache of series configs; reloads from the registry on an unknown id."""

    def __init__(self, main_reader: Engine):
        self._engine = main_reader
        self._by_id: dict[int, SeriesConfig] = {}

    def get_many(self, ids) -> dict[int, SeriesConfig]:
        wanted = {int(i) for i in ids}
        missing = wanted - self._by_id.keys()
        if missing:
            self._load(missing)
            still = wanted - self._by_id.keys()
            if still:
                raise UnknownSeriesError(f"unknown series id(s): {sorted(still)[:10]}")
        return {i: self._by_id[i] for i in wanted}

    def invalidate(self) -> None:
        self._by_id.clear()

    def _load(self, ids: set[int]) -> None:
        q = (
            select(points, assets.c.kind, assets.c.timezone, assets.c.vendor_plant_id)
            .join(assets, assets.c.id == points.c.asset_id)
            .where(points.c.id.in_(sorted(ids)))
        )
        with self._engine.connect() as conn:
            for r in conn.execute(q).mappings():
                mt = MetricType(r["metric_type"])
                lo, hi = DEFAULT_PLAUSIBLE_RANGE[mt]
                self._by_id[r["id"]] = SeriesConfig(
                    series_id=r["id"], asset_id=r["asset_id"], asset_kind=r["kind"],
                    point_key=r["key"], metric_type=mt, timezone=r["timezone"],
                    vendor_plant_id=r["vendor_plant_id"], reset_ratio=r["reset_ratio"],
                    wrap_kwh=r["wrap_kwh"], expected_interval_s=r["expected_interval_s"],
                    plausible_min=lo if r["plausible_min"] is None else r["plausible_min"],
                    plausible_max=hi if r["plausible_max"] is None else r["plausible_max"],
                )

"""The contract between a source and the rest of Wattline.

A source (vendor adapter, CSV file, simulator, MQTT device...) never writes a table.
It is given a read-only :class:`SeriesResolver` that answers "which series is point
``key`` of asset ``asset_id``, and how is it configured", and it hands back
:class:`~wattline.domain.readings.ReadingBatch` es for the pipeline. When a source
needs points that do not exist yet (a CSV file naming a new point, a simulated site,
points a vendor reports), it describes them as :class:`PointDefinition` s and the
provisioning service registers them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Protocol

from wattline.domain.metrics import CANONICAL_UNIT, MetricType


@dataclass(frozen=True)
class PointDefinition:
    """What the registry needs to create one point (one series) of an asset.

    Parameters
    ----------
    key : str
        Point key, unique per asset (``energy_total``, ``power``...).
    metric_type : MetricType
        Decides the canonical unit and whether the series has a ledger.
    expected_interval_s : int
        Reporting interval in seconds (gap detection).
    vendor_field : str, optional
        The vendor's name of the quantity, for points a vendor reports.
    reset_ratio : float
        A counter value below ``reset_ratio`` x the previous one is a reset (unitless).
    wrap_kwh : float, optional
        Counter width in kWh for counters that wrap.
    plausible_min, plausible_max : float, optional
        Plausible range in the canonical unit; ``None`` = the metric type's default.
    """

    key: str
    metric_type: MetricType
    expected_interval_s: int = 900
    vendor_field: str | None = None
    reset_ratio: float = 0.9
    wrap_kwh: float | None = None
    plausible_min: float | None = None
    plausible_max: float | None = None

    @property
    def unit(self) -> str:
        """Canonical unit of the point's values."""
        return CANONICAL_UNIT[self.metric_type]


@dataclass(frozen=True)
class PointRegistration:
    """A point a source needs on an asset it knows by name (e.g. a CSV row's asset)."""

    asset_name: str
    definition: PointDefinition


@dataclass(frozen=True)
class ResolvedSeries:
    """A registered point: its series id and the configuration a source may need.

    ``timezone`` is the asset's IANA zone; ``expected_interval_s`` in seconds;
    values of the series are in :attr:`unit`, the canonical unit of ``metric_type``.
    """

    series_id: int
    asset_id: int
    point_key: str
    metric_type: MetricType
    timezone: str
    expected_interval_s: int = 900
    vendor_field: str | None = None

    @property
    def unit(self) -> str:
        return CANONICAL_UNIT[self.metric_type]


class SeriesResolver(Protocol):
    """Read-only lookup of registered points, the one thing a source may ask the registry."""

    def resolve(self, asset_id: int, point_key: str) -> ResolvedSeries | None:
        """The series of point ``point_key`` of asset ``asset_id``; ``None`` if not registered."""
        ...


class StaticSeriesResolver:
    """A resolver over series already loaded (e.g. a job's plants with their points).

    Answers from memory only: build a new one to see registry changes.
    """

    def __init__(self, series: Iterable[ResolvedSeries] = ()):
        self._by_key: dict[tuple[int, str], ResolvedSeries] = {
            (s.asset_id, s.point_key): s for s in series}

    def resolve(self, asset_id: int, point_key: str) -> ResolvedSeries | None:
        return self._by_key.get((int(asset_id), point_key))

    def series_ids(self, asset_id: int) -> Mapping[str, int]:
        """Point key -> series id of one asset."""
        return {k: s.series_id for (a, k), s in self._by_key.items() if a == int(asset_id)}

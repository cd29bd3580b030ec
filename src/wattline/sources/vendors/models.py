"""Plain data shapes shared by every vendor adapter.

Units: every value in :attr:`VendorRecord.values` is already in the canonical unit of
its point (energy kWh, power kW); timestamps are int UTC epoch seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from wattline.domain.metrics import CANONICAL_UNIT, MetricType, to_canonical_factor

# Standard plant point keys every solar adapter should produce.
ENERGY_TOTAL = "energy_total"  # cumulative kWh counter
POWER = "power"  # kW
ENERGY_TODAY = "energy_today"  # kWh since local midnight; resets daily


@dataclass(frozen=True)
class VendorPointSpec:
    """One quantity a vendor reports, and how it maps onto a Wattline point (the
    registry's side of a point is :class:`wattline.domain.sources.PointDefinition`).

    ``vendor_unit`` is what the vendor sends; ``unit`` is the canonical unit the
    adapter converts to (``factor`` = multiplier from one to the other).
    ``daily_reset`` marks counters that go back to zero at local midnight, so the
    ledger can expect the drop instead of flagging it.
    """

    key: str
    metric_type: MetricType
    vendor_field: str
    vendor_unit: str
    daily_reset: bool = False
    # seed 003 point_info defaults for a system's point (None: from the key, see
    # wattline.domain.systems.default_point_info): solar | battery | grid | load | inverter ...
    subsystem: str | None = None
    point_type: str | None = None  # generation | consumption | storage | exchange | state ...
    label: str | None = None

    @property
    def unit(self) -> str:
        return CANONICAL_UNIT[self.metric_type]

    @cached_property
    def factor(self) -> float:
        return to_canonical_factor(self.vendor_unit, self.metric_type)


@dataclass(frozen=True)
class VendorLimits:
    """What one vendor account may do.

    ``max_range_s``: longest time range one history call may cover (seconds).
    ``page_size``: records per page when the API pages (``None``: it does not).
    ``interval_s``: resolution of the history the adapter asks for.
    ``calls_per_minute`` / ``calls_per_day`` / ``calls_per_month``: ``None`` = no limit.
    ``max_concurrent``: calls in flight at once, enforced by adapters that declare it.
    """

    max_range_s: int
    page_size: int | None
    interval_s: int
    calls_per_minute: int | None
    calls_per_day: int | None = None
    calls_per_month: int | None = None
    max_concurrent: int | None = None  # calls in flight at once (None: no limit)


@dataclass
class VendorRecord:
    """One normalized telemetry record: ``values`` keyed by point key, canonical units."""

    ts: int
    values: dict[str, float]
    raw: dict


@dataclass
class RejectedRecord:
    """A record the adapter could not use, kept with the vendor's raw data and why."""

    raw: Any
    reason: str


@dataclass(frozen=True)
class CallLog:
    """One HTTP attempt. ``path`` never includes the query string or any secret.

    ``status`` is ``None`` when no response arrived (timeout, connection error).
    ``records`` counts records in the response; ``started_at`` is UTC epoch seconds.
    """

    method: str
    path: str
    status: int | None
    duration_ms: float
    records: int
    error: str | None
    attempt: int
    started_at: float = 0.0


@dataclass
class FetchResult:
    """Records sorted by ``ts`` (each ts once), rejected records and every call made."""

    records: list[VendorRecord] = field(default_factory=list)
    rejected: list[RejectedRecord] = field(default_factory=list)
    calls: list[CallLog] = field(default_factory=list)

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(ts int64, values float64) of the records that carry point ``key``."""
        rows = [(r.ts, r.values[key]) for r in self.records if key in r.values]
        ts = np.fromiter((t for t, _ in rows), np.int64, len(rows))
        vals = np.fromiter((v for _, v in rows), np.float64, len(rows))
        return ts, vals


@dataclass(frozen=True)
class VendorPlant:
    """A plant as the vendor lists it (for discovery and connection tests)."""

    vendor_plant_id: str
    name: str
    capacity_kw: float | None = None
    timezone: str | None = None  # IANA name when the vendor gives one
    latitude: float | None = None
    longitude: float | None = None
    start_operating_ts: int | None = None
    raw: dict = field(default_factory=dict, repr=False)

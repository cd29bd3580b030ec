"""How seed-003 point values are answered: the unit a point is shown in, the level of
a historical range, the figure of a bucket. Shared by ``/api/data/latest`` and
``/api/data/historical`` so the two always agree."""

from __future__ import annotations

from wattline.domain.metrics import CANONICAL_UNIT, MetricType

RANGES_S = {"1H": 3600, "6H": 6 * 3600, "24H": 86400, "7D": 7 * 86400, "30D": 30 * 86400}
LEVELS = ("raw", "5m", "daily")
ENERGY_TYPES = (MetricType.COUNTER, MetricType.INTERVAL_ENERGY)


def level_for(range_key: str) -> str:
    """raw for ranges up to 6 hours, 5m up to 24 hours, daily beyond (seed 003)."""
    hours = RANGES_S[range_key] / 3600
    return "raw" if hours <= 6 else "5m" if hours <= 24 else "daily"


def display_unit(key: str, metric_type: str) -> tuple[float, str]:
    """(factor from the canonical unit, unit) a point's values are answered in: power in
    W for the seed's ``*_w`` keys (``solar_w``), else in the canonical unit (kW, kWh, %)."""
    mt = MetricType(metric_type)
    if mt is MetricType.POWER:
        return (1000.0, "W") if key.endswith("_w") else (1.0, "kW")
    return 1.0, CANONICAL_UNIT[mt]


def bucket_value(metric_type: str, row: dict) -> float | None:
    """A bucket's figure: its energy (kWh) for energy points, else the mean of its readings."""
    if MetricType(metric_type) in ENERGY_TYPES:
        e = row.get("energy_milli_wh")
        return None if e is None else e / 1e6
    return row.get("avg")

"""Metric types, canonical units and unit conversion.

Every reading is stored in the canonical unit of its metric type:

================  ==============  =========================================
metric type       canonical unit  meaning of the value
================  ==============  =========================================
counter           kWh             cumulative energy register (monotonic
                                  except for resets / wraps)
interval_energy   kWh             energy delivered in the interval ending at ts
power             kW              instantaneous (or interval-mean) power
soc               %               battery state of charge, 0..100
temperature       degC
voltage           V
current           A
frequency         Hz
state             (none)          numeric state, e.g. switch on = 1
price             c/kWh           energy price of the interval starting at
                                  ts (cents per kWh; may be negative)
================  ==============  =========================================
"""

from __future__ import annotations

import enum
import math


class MetricType(str, enum.Enum):
    COUNTER = "counter"
    INTERVAL_ENERGY = "interval_energy"
    POWER = "power"
    SOC = "soc"
    TEMPERATURE = "temperature"
    VOLTAGE = "voltage"
    CURRENT = "current"
    FREQUENCY = "frequency"
    STATE = "state"
    PRICE = "price"

    @property
    def is_energy(self) -> bool:
        """True for series that produce ledger entries (energy over time)."""
        return self in (MetricType.COUNTER, MetricType.INTERVAL_ENERGY, MetricType.POWER)


CANONICAL_UNIT: dict[MetricType, str] = {
    MetricType.COUNTER: "kWh",
    MetricType.INTERVAL_ENERGY: "kWh",
    MetricType.POWER: "kW",
    MetricType.SOC: "%",
    MetricType.TEMPERATURE: "degC",
    MetricType.VOLTAGE: "V",
    MetricType.CURRENT: "A",
    MetricType.FREQUENCY: "Hz",
    MetricType.STATE: "",
    MetricType.PRICE: "c/kWh",
}

# factor that turns a value in the given unit into the canonical unit of its family
_ENERGY_TO_KWH = {"wh": 1e-3, "kwh": 1.0, "mwh": 1e3, "gwh": 1e6}
_POWER_TO_KW = {"w": 1e-3, "kw": 1.0, "mw": 1e3}
_OTHER = {
    "%": (MetricType.SOC, 1.0),
    "degc": (MetricType.TEMPERATURE, 1.0),
    "°c": (MetricType.TEMPERATURE, 1.0),
    "c": (MetricType.TEMPERATURE, 1.0),
    "v": (MetricType.VOLTAGE, 1.0),
    "a": (MetricType.CURRENT, 1.0),
    "hz": (MetricType.FREQUENCY, 1.0),
    "c/kwh": (MetricType.PRICE, 1.0),
}


class UnitError(ValueError):
    """A unit that Wattline does not know, or that does not fit the metric type."""


def default_metric_type(unit: str) -> MetricType:
    """Metric type implied by a unit: Wh/kWh/MWh -> counter, W/kW/MW -> power, % -> soc."""
    u = unit.strip().lower()
    if u in _ENERGY_TO_KWH:
        return MetricType.COUNTER
    if u in _POWER_TO_KW:
        return MetricType.POWER
    if u in _OTHER:
        return _OTHER[u][0]
    raise UnitError(f"unknown unit {unit!r}")


def to_canonical_factor(unit: str, metric_type: MetricType) -> float:
    """Multiplier turning a value in ``unit`` into the canonical unit of ``metric_type``.

    Raises :class:`UnitError` if the unit does not measure that kind of quantity
    (for example ``kW`` for a counter).
    """
    u = unit.strip().lower()
    if metric_type in (MetricType.COUNTER, MetricType.INTERVAL_ENERGY):
        table = _ENERGY_TO_KWH
    elif metric_type is MetricType.POWER:
        table = _POWER_TO_KW
    elif metric_type is MetricType.STATE:
        return 1.0
    else:
        if u in _OTHER and _OTHER[u][0] is metric_type:
            return 1.0
        raise UnitError(f"unit {unit!r} does not measure {metric_type.value}")
    if u not in table:
        raise UnitError(f"unit {unit!r} does not measure {metric_type.value}")
    return table[u]


# Plausible ranges used when a point does not set its own (canonical units).
DEFAULT_PLAUSIBLE_RANGE: dict[MetricType, tuple[float, float]] = {
    MetricType.COUNTER: (0.0, 1e12),
    MetricType.INTERVAL_ENERGY: (0.0, 1e9),
    MetricType.POWER: (-1e7, 1e7),
    MetricType.SOC: (0.0, 100.0),
    MetricType.TEMPERATURE: (-80.0, 200.0),
    MetricType.VOLTAGE: (0.0, 1e6),
    MetricType.CURRENT: (-1e6, 1e6),
    MetricType.FREQUENCY: (0.0, 1000.0),
    MetricType.STATE: (-1e12, 1e12),
    MetricType.PRICE: (-1e6, 1e6),  # c/kWh: negative prices are real (NEM spot below zero)
}


def is_finite(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)

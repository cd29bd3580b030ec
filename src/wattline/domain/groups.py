"""Group roll-up rules: how the members' figures of one metric make the group's.

A group (work order, composite system, classroom) combines its member assets metric
by metric: energy and power add up; state of charge is a mean weighted by each
member's battery capacity when every contributing member's capacity is known (a
1 kWh battery at 10 % and a 9 kWh one at 90 % hold 82 % of their joint capacity), and
a plain mean otherwise, since a partial set of weights would over-weight the
members that happen to declare one. The rules are a table per group kind so a new
kind states its own without touching the callers.

Pure: no I/O; values in, values out.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence

import numpy as np

from wattline.domain.metrics import MetricType


class Rule(str, enum.Enum):
    """How a group combines one metric of its members."""

    SUM = "sum"
    CAPACITY_WEIGHTED_MEAN = "capacity_weighted_mean"
    MEAN = "mean"


GROUP_KINDS = ("work_order", "composite", "classroom")

_COMMON: dict[MetricType, Rule] = {
    MetricType.COUNTER: Rule.SUM,
    MetricType.INTERVAL_ENERGY: Rule.SUM,
    MetricType.POWER: Rule.SUM,
    MetricType.CURRENT: Rule.SUM,
    MetricType.SOC: Rule.CAPACITY_WEIGHTED_MEAN,
    MetricType.TEMPERATURE: Rule.MEAN,
    MetricType.VOLTAGE: Rule.MEAN,
    MetricType.FREQUENCY: Rule.MEAN,
}

#: group kind -> metric type -> rule; a metric type missing here is not rolled up
#: (``state``: the mean of two switch states means nothing).
RULES: dict[str, dict[MetricType, Rule]] = {kind: dict(_COMMON) for kind in GROUP_KINDS}

#: keys of an asset's ``attributes`` read as its battery capacity, kWh, in this order
CAPACITY_ATTRIBUTES = ("battery_capacity_kwh", "capacity_kwh")


class NoRule(ValueError):
    """The group kind does not roll up this metric type."""


def rule_for(kind: str, metric_type: MetricType | str) -> Rule:
    """The rule a group of ``kind`` applies to ``metric_type``.

    Parameters
    ----------
    kind : str
        Group kind, one of :data:`GROUP_KINDS`.
    metric_type : MetricType or str
        Metric type of the members' series (``"power"``, ``"soc"``...).

    Returns
    -------
    Rule

    Raises
    ------
    NoRule
        For an unknown kind or a metric type the kind does not roll up.
    """
    try:
        return RULES[kind][MetricType(metric_type)]
    except (KeyError, ValueError):
        raise NoRule(f"a {kind!r} group does not roll up {metric_type!r} series") from None


def battery_capacity_kwh(attributes: Mapping | None) -> float | None:
    """Battery capacity of an asset from its attributes, kWh; None if not given or not > 0.

    Parameters
    ----------
    attributes : mapping or None
        The asset's free-form attributes (``assets.attributes``), e.g.
        ``{"battery_capacity_kwh": 13.5}``.
    """
    for key in CAPACITY_ATTRIBUTES:
        value = (attributes or {}).get(key)
        try:
            cap = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(cap) and cap > 0:
            return cap
    return None


def capacity_weighted_mean(values: Sequence[float | None], capacities_kwh: Sequence[float | None]) -> float | None:
    """Mean of the members' values weighted by battery capacity, or the plain mean.

    Parameters
    ----------
    values : sequence of float or None
        One value per member (state of charge, %); None = the member has none.
    capacities_kwh : sequence of float or None
        Battery capacity of each member, kWh; None = unknown.

    Returns
    -------
    float or None
        In the unit of ``values`` (%). Weighted by capacity when every member that
        has a value has a known capacity > 0, else unweighted; None if no member
        has a value.
    """
    if len(values) != len(capacities_kwh):
        raise ValueError("one capacity per value")
    pairs = [(float(v), c) for v, c in zip(values, capacities_kwh) if v is not None and math.isfinite(v)]
    if not pairs:
        return None
    if all(c is not None and c > 0 for _, c in pairs):
        total = sum(c for _, c in pairs)
        return sum(v * c for v, c in pairs) / total
    return sum(v for v, _ in pairs) / len(pairs)


def combine(rule: Rule, values: Sequence[float | None], capacities_kwh: Sequence[float | None] | None = None
            ) -> float | None:
    """Apply ``rule`` to the members' values (each in the metric's canonical unit).

    Parameters
    ----------
    rule : Rule
    values : sequence of float or None
        One value per member, canonical unit of the metric (kWh, kW, %...); None = none.
    capacities_kwh : sequence of float or None, optional
        Battery capacity per member, kWh, for :attr:`Rule.CAPACITY_WEIGHTED_MEAN`.

    Returns
    -------
    float or None
        The group's value in the same unit; None if no member has a value.
    """
    present = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not present:
        return None
    if rule is Rule.SUM:
        return math.fsum(present)
    if rule is Rule.MEAN:
        return math.fsum(present) / len(present)
    return capacity_weighted_mean(values, capacities_kwh if capacities_kwh is not None else [None] * len(values))


def sum_periods(starts: np.ndarray, energy_milli_wh: np.ndarray, flags: np.ndarray, ledger_count: np.ndarray,
                estimated: np.ndarray) -> dict[int, tuple[int, int, int, bool]]:
    """The group's energy per period from its members' energy per period (rule SUM).

    Parameters
    ----------
    starts : array of int
        Period start of each member bucket, epoch seconds (periods of the group's zone).
    energy_milli_wh : array of int
        Energy of each member bucket, milli-Wh.
    flags : array of int
        Quality flags of each member bucket (bit set).
    ledger_count : array of int
        Ledger entries in each member bucket.
    estimated : array of bool
        The member bucket holds a ledger delta split at one of its edges.

    Returns
    -------
    dict
        period start (epoch s) -> (energy milli-Wh, or-ed flags, ledger entries, any estimated).
        Integer sums: exact, whatever the order of the members.
    """
    out: dict[int, tuple[int, int, int, bool]] = {}
    for s, e, f, n, est in zip(np.asarray(starts).tolist(), np.asarray(energy_milli_wh).tolist(),
                               np.asarray(flags).tolist(), np.asarray(ledger_count).tolist(),
                               np.asarray(estimated).tolist()):
        if not n:
            continue
        e0, f0, n0, est0 = out.get(s, (0, 0, 0, False))
        out[s] = (e0 + int(e), f0 | int(f), n0 + int(n), est0 or bool(est))
    return out

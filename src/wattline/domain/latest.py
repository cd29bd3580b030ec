"""Latest values: the newest reading of each series, and the interface that keeps them.

Two implementations live in ``store/``: the database (the newest stored reading,
always right, one index lookup per series) and Redis (one hash per system, keyed by
point, or per other asset, keyed by series; written by the pipeline after each commit,
read by the API), which falls back to the database whenever Redis cannot answer.

A composite's latest values are its members' rolled up by the group rules of
:mod:`wattline.domain.groups` (:func:`roll_up_latest`): power and energy add up, state
of charge is averaged by battery capacity.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Iterable, Literal, Protocol

import numpy as np

from wattline.domain.groups import NoRule, combine, rule_for


@dataclass(frozen=True)
class LatestValue:
    """The newest reading of one series.

    Attributes
    ----------
    asset_id : int
        Asset the series belongs to (the Redis hash it lives in).
    series_id : int
        Series (point) id.
    ts : int
        Reading time, UTC epoch seconds.
    value : float
        Reading value, in the series' canonical unit.
    """

    asset_id: int
    series_id: int
    ts: int
    value: float


Source = Literal["redis", "database"]


@dataclass(frozen=True)
class LatestRead:
    """What a read of several assets found.

    Attributes
    ----------
    values : dict
        Series id -> :class:`LatestValue` (series without any reading are left out).
    source : {"redis", "database"}
        ``"redis"`` when the cache answered every value returned, ``"database"`` when
        any of them came from the database (Redis down, or a value it did not hold).
    """

    values: dict[int, LatestValue] = field(default_factory=dict)
    source: Source = "database"


class LatestValueStore(Protocol):
    """Where the API reads current values and the pipeline records them."""

    def write(self, values: Iterable[LatestValue]) -> None:
        """Record ``values`` after their transaction committed. A value older than the
        one held for its series is ignored. Never raises: a failed write is logged and
        counted, the ingest it follows has already succeeded."""

    def read(self, asset_id: int, series_ids: list[int]) -> dict[int, LatestValue]:
        """Newest reading per series of ``asset_id`` (series without any are left out)."""

    def read_assets(self, wanted: Mapping[int, Sequence[int]]) -> LatestRead:
        """Newest reading per series of several assets at once (asset id -> series ids),
        and where the answer came from."""


def newest_per_series(series_id: np.ndarray, ts: np.ndarray, value: np.ndarray,
                      asset_of: dict[int, int]) -> list[LatestValue]:
    """The newest reading of every series in a batch.

    Parameters
    ----------
    series_id, ts, value : numpy.ndarray
        Batch columns: series ids, UTC epoch seconds, values in canonical units.
        At equal (series, ts) the later row wins, like the pipeline's upsert.
    asset_of : dict
        Series id -> asset id.

    Returns
    -------
    list of LatestValue
        One per series, ordered by series id.
    """
    if len(series_id) == 0:
        return []
    ds, dt = np.diff(series_id), np.diff(ts)
    if ((ds > 0) | ((ds == 0) & (dt >= 0))).all():  # sources mostly send sorted batches
        sid, t, v = series_id, ts, value
    else:
        order = np.lexsort((np.arange(len(series_id)), ts, series_id))
        sid, t, v = series_id[order], ts[order], value[order]
    last = np.flatnonzero(np.r_[sid[1:] != sid[:-1], True])
    return [LatestValue(asset_of[int(s)], int(s), int(x), float(y))
            for s, x, y in zip(sid[last].tolist(), t[last].tolist(), v[last].tolist())]


@dataclass(frozen=True)
class MemberPoint:
    """One point of one member system of a composite.

    Attributes
    ----------
    system_id : int
    series_id : int
    key : str
        Point key (``solar_w``, ``battery_soc``...): members' points of one key combine.
    metric_type : str
        :class:`~wattline.domain.metrics.MetricType` value; it picks the roll-up rule.
    unit : str
        Canonical unit of the metric type (kW, kWh, %...).
    """

    system_id: int
    series_id: int
    key: str
    metric_type: str
    unit: str


@dataclass(frozen=True)
class RolledUp:
    """A composite's value of one point key.

    Attributes
    ----------
    value : float
        In ``unit``: the sum of the members' values (power, energy, current) or their
        capacity-weighted mean (state of charge, %) or plain mean (temperature...).
    ts : int
        UTC epoch seconds: the oldest of the contributing members' readings (the
        figure is true as of then, at the latest).
    unit : str
    members : tuple of int
        System ids that contributed a value.
    """

    value: float
    ts: int
    unit: str
    members: tuple[int, ...]


def roll_up_latest(points: Sequence[MemberPoint], latest: Mapping[int, LatestValue],
                   capacities_kwh: Mapping[int, float | None], kind: str = "composite") -> dict[str, RolledUp]:
    """A composite's latest value per point key from its members' latest values.

    Parameters
    ----------
    points : sequence of MemberPoint
        The members' points to combine (visible, active), in display order.
    latest : mapping
        Series id -> :class:`LatestValue` of the members' series (absent: no reading).
    capacities_kwh : mapping
        System id -> battery capacity, kWh, or None when unknown (for state of charge).
    kind : str, default "composite"
        Group kind whose rules apply (:data:`wattline.domain.groups.RULES`).

    Returns
    -------
    dict
        Point key -> :class:`RolledUp`, in the order the keys first appear in
        ``points``. A key is left out when no member has a value, when the members
        disagree on its metric type or unit (no meaningful combination), or when the
        kind has no rule for its metric type (a state, a price).
    """
    by_key: dict[str, list[MemberPoint]] = {}
    for p in points:
        by_key.setdefault(p.key, []).append(p)
    out: dict[str, RolledUp] = {}
    for key, pts in by_key.items():
        if len({(p.metric_type, p.unit) for p in pts}) != 1:
            continue
        try:
            rule = rule_for(kind, pts[0].metric_type)
        except NoRule:
            continue
        present = [(p, latest[p.series_id]) for p in pts
                   if p.series_id in latest and math.isfinite(latest[p.series_id].value)]
        if not present:
            continue
        value = combine(rule, [v.value for _, v in present], [capacities_kwh.get(p.system_id) for p, _ in present])
        if value is None:
            continue
        out[key] = RolledUp(value, min(v.ts for _, v in present), pts[0].unit,
                            tuple(dict.fromkeys(p.system_id for p, _ in present)))
    return out


def composite_signature(member_ids: Sequence[int], points: Sequence[MemberPoint],
                        capacities_kwh: Mapping[int, float | None]) -> str:
    """Fingerprint of what a composite's roll-up is computed from: its members, their
    visible points (series, key, metric type, unit) and battery capacities. A cached
    roll-up is good only for the same fingerprint (a point hidden, a member added or a
    capacity changed makes it stale even though no value was written)."""
    text = json.dumps([list(member_ids), [[p.system_id, p.series_id, p.key, p.metric_type, p.unit] for p in points],
                       sorted([int(k), v] for k, v in capacities_kwh.items())], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]

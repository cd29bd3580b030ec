"""What the pipeline knows about each series, read from the registry (read-only)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from wattline import clock
from wattline.domain.metrics import DEFAULT_PLAUSIBLE_RANGE, MetricType
from wattline.domain.ledger import MILLI_WH_PER_KWH, SeriesRules
from wattline.domain.quality import Method
from wattline.store import registry_version, series_catalog
from wattline.store.engines import DbEngine


MAX_AGE_S = 5.0  # how long a series' config is used before it is read again


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
    # the asset's switch-state series, which gates this energy series (devices); or None
    gate_series_id: int | None = None

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
    """Series configs, each re-read from the registry once it is ``max_age_s`` old.

    A point's new plausible range, reset ratio or wrap, or its asset's new timezone,
    applies within ``max_age_s`` seconds (from the first batch after that), whichever
    process changed it: no restart, no invalidation message between processes.
    Between re-reads a batch costs no registry query at all (a query per batch costs
    a PostgreSQL round trip, ~1 ms, and for 1,000 series as much again to compare the
    rows: small live batches would pay it every time). A re-read is one query
    for the stale ids of the batch and rebuilds only the configs whose row changed;
    an unchanged config stays the same object, so callers can tell a change by
    identity. :meth:`invalidate` makes the next batch re-read at once (for a writer
    in the same process that needs the change applied immediately).

    A config that is ``max_age_s`` old is first checked against the registry's version
    (``store.registry_version``, moved by triggers on every write of points and
    assets): read at the version still current, it is kept another ``max_age_s``
    without reading it again. A fleet polled once a minute has every config stale at
    every batch; re-reading them took a sixth of the poll writer's time at 3,000 systems.

    Ages are taken from ``wattline.clock``, so a test moves them with ``clock.set_now``.
    """

    def __init__(self, main_reader: DbEngine, max_age_s: float = MAX_AGE_S):
        self._engine = main_reader
        self.max_age_s = max_age_s
        self._rows: dict[int, tuple] = {}
        self._by_id: dict[int, SeriesConfig] = {}
        self._read_at: dict[int, float] = {}  # clock instant each config was read (or found current)
        self._read_ver: dict[int, int | None] = {}  # the registry's version before each was read
        self._oldest = math.inf  # <= min(self._read_at.values()): nothing older, nothing to check

    def get_many(self, ids: Iterable[int]) -> dict[int, SeriesConfig]:
        wanted = {int(i) for i in ids}
        now = clock.now()
        if _fresh(now - self._oldest, self.max_age_s):
            stale = self._not_held(wanted)
        else:
            stale = {i for i in wanted if not _fresh(now - self._read_at.get(i, -math.inf), self.max_age_s)}
        if stale:
            # the version before the data: a write committed after it moves it again
            version = registry_version.current(self._engine)
            if version is not None:
                current = {i for i in stale if i in self._by_id and self._read_ver.get(i) == version}
                for i in current:
                    self._read_at[i] = now
                stale -= current  # (their instants only grew: ``_oldest`` stays a lower bound)
        if stale:
            self._refresh(stale, now, version)
        missing = self._not_held(wanted)
        if missing:
            raise UnknownSeriesError(f"unknown series id(s): {sorted(missing)[:10]}")
        return {i: self._by_id[i] for i in wanted}

    def _not_held(self, ids: set[int]) -> set[int]:
        # not ``ids - self._by_id.keys()``: that copies every key of the dict (4 ms a
        # call at 110,000 series); this looks up only the ids asked for
        return {i for i in ids if i not in self._by_id}

    def invalidate(self, ids: Iterable[int] | None = None) -> None:
        """Re-read these configs (default: all) at the next batch that uses them."""
        for i in (list(self._by_id) if ids is None else [int(i) for i in ids]):
            self._forget(i)
        self._oldest = min(self._read_at.values(), default=math.inf)

    def _forget(self, sid: int) -> None:
        self._rows.pop(sid, None)
        self._by_id.pop(sid, None)
        self._read_at.pop(sid, None)
        self._read_ver.pop(sid, None)

    def _refresh(self, ids: set[int], now: float, version: int | None = None) -> None:
        found = set()
        for row in series_catalog.read_configs(self._engine, ids):
            sid = row[0]
            found.add(sid)
            if self._rows.get(sid) != row:
                self._rows[sid] = row
                self._by_id[sid] = SeriesConfig.from_row(row)
        for sid in found:
            self._read_at[sid] = now
            self._read_ver[sid] = version
        for sid in ids - found:  # not (or no longer) in the registry
            self._forget(sid)
        # a lower bound, not recomputed over every config (113,000 at 10,000 systems)
        # each batch: entries only get newer or go; :meth:`invalidate` makes it exact
        self._oldest = min(self._oldest, now) if found else self._oldest


def _fresh(age_s: float, max_age_s: float) -> bool:
    # a clock set back (a test) counts as stale, not as fresh for ever
    return 0 <= age_s < max_age_s

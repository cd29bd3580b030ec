"""Live mode building block: one reading per site for the interval that just ended.

:class:`LiveSimulator` keeps each site's state (battery, energy counters, end of
the last simulated interval) between calls, so a caller that runs it every
``interval_s`` gets continuous, physically consistent series, and one that
persists :meth:`LiveSimulator.state_dict` across restarts continues where it
stopped. A site whose computation fails is reported in ``StepResult.errors`` and
keeps its state; the other sites are unaffected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from wattline.simulator.battery import BatteryState
from wattline.simulator.engine import METRICS, Fleet, SiteState
from wattline.simulator.sites import SiteSpec

STATE_VERSION = 1


@dataclass(frozen=True)
class SiteSample:
    """One site's reading for the interval ``(ts - interval_s, ts]``.

    ``values`` maps :data:`~wattline.simulator.engine.METRICS` keys to floats; a
    site without a battery has no battery keys.
    """

    site_id: str
    ts: int
    interval_s: int
    values: dict[str, float]

    def __getitem__(self, key: str) -> float:
        return self.values[key]


class StepResult(list):
    """The samples of one :meth:`LiveSimulator.step` (a list of :class:`SiteSample`).

    Attributes
    ----------
    ts : int
        The ``now_ts`` the step was computed for.
    errors : dict of site id to str
        Sites that produced no sample this step, with the reason.
    """

    def __init__(self, ts: int, samples: Sequence[SiteSample] = (), errors: Mapping[str, str] | None = None):
        super().__init__(samples)
        self.ts = ts
        self.errors: dict[str, str] = dict(errors or {})


class LiveSimulator:
    """Step a fleet in real time.

    Parameters
    ----------
    sites : sequence of SiteSpec
    interval_s : int
        Nominal reading interval (1 or 5 minutes). The first step of a site covers
        one interval; a longer gap is simulated in sub-steps of at most
        ``interval_s`` and reported as one reading whose counters include it all.
    max_catchup_s : int
        Longest gap that is simulated; beyond it the site resumes ``max_catchup_s``
        before ``now_ts`` (the counters do not include the unsimulated time, as for
        a device that was switched off).
    weather_factory : callable, optional
        Weather source for a list of sites (default offline; e.g.
        ``OpenMeteoWeather`` for real weather with offline fallback).
    """

    def __init__(self, sites: Sequence[SiteSpec], interval_s: int = 300, max_catchup_s: int = 2 * 86400,
                 weather_factory: Callable[[Sequence[SiteSpec]], Any] | None = None):
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.sites = tuple(sites)
        ids = [s.id for s in self.sites]
        if len(set(ids)) != len(ids):
            raise ValueError("site ids must be unique")
        self.interval_s = int(interval_s)
        self.max_catchup_s = int(max(max_catchup_s, interval_s))
        self._weather_factory = weather_factory
        self._fleets: dict[tuple[int, ...], Fleet] = {}
        self._states: dict[str, SiteState] = {}
        for i, site in enumerate(self.sites):
            self._states[site.id] = self._fresh_state(i)

    # -- state ---------------------------------------------------------------------

    def _fresh_state(self, index: int) -> SiteState:
        spec = self.sites[index].battery
        return SiteState(battery=BatteryState.initial(spec) if spec is not None else None)

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state of every site (battery, counters, last step)."""
        return {
            "version": STATE_VERSION,
            "interval_s": self.interval_s,
            "sites": {sid: st.to_dict() for sid, st in self._states.items()},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from a :meth:`state_dict`. Sites absent from it start fresh;
        sites in it that this simulator does not have are ignored."""
        version = state.get("version", STATE_VERSION)
        if version != STATE_VERSION:
            raise ValueError(f"unsupported simulator state version {version!r}")
        saved = state.get("sites", {})
        for i, site in enumerate(self.sites):
            d = saved.get(site.id)
            self._states[site.id] = SiteState.from_dict(d) if d is not None else self._fresh_state(i)

    def site_state(self, site_id: str) -> SiteState:
        return self._states[site_id]

    # -- stepping ------------------------------------------------------------------

    def step(self, now_ts: int) -> StepResult:
        """One reading per site for the interval ending at ``now_ts`` (epoch seconds)."""
        now_ts = int(now_ts)
        result = StepResult(now_ts)
        groups: dict[int | None, list[int]] = {}
        for i, site in enumerate(self.sites):
            groups.setdefault(self._states[site.id].last_ts, []).append(i)
        samples: dict[int, SiteSample] = {}
        for last_ts, members in groups.items():
            self._step_group(members, last_ts, now_ts, samples, result.errors)
        result.extend(samples[i] for i in sorted(samples))
        return result

    def _fleet(self, members: Sequence[int]) -> Fleet:
        key = tuple(members)
        fleet = self._fleets.get(key)
        if fleet is None:
            fleet = Fleet([self.sites[i] for i in members], self._weather_factory)
            if len(self._fleets) > 64:  # groups come and go with failures; bound the cache
                self._fleets.clear()
            self._fleets[key] = fleet
        return fleet

    def _grid(self, last_ts: int | None, now_ts: int) -> tuple[np.ndarray, np.ndarray]:
        start = now_ts - self.interval_s if last_ts is None else max(last_ts, now_ts - self.max_catchup_s)
        gap = now_ts - start
        n = max(1, math.ceil(gap / self.interval_s))
        ends = start + (np.arange(1, n + 1, dtype=np.int64) * gap) // n
        return ends, np.diff(np.concatenate([[start], ends]))

    def _step_group(self, members: list[int], last_ts: int | None, now_ts: int,
                    samples: dict[int, SiteSample], errors: dict[str, str]) -> None:
        if last_ts is not None and now_ts <= last_ts:
            for i in members:
                errors[self.sites[i].id] = f"now_ts {now_ts} is not after the last step {last_ts}"
            return
        try:
            fleet = self._fleet(members)
            state = fleet.pack([self._states[self.sites[i].id] for i in members])
            ends, dts = self._grid(last_ts, now_ts)
            data = fleet.simulate(ends, dts, state)
            new_states = fleet.unpack(state, last_ts=now_ts)
        except Exception as exc:  # noqa: BLE001 - isolate the failing site(s)
            if len(members) == 1:
                errors[self.sites[members[0]].id] = f"{type(exc).__name__}: {exc}"
                return
            # a vectorised step failed: find the culprit(s) by stepping each site alone
            for i in members:
                self._step_group([i], last_ts, now_ts, samples, errors)
            return
        interval = int(now_ts - (ends[0] - dts[0]))
        for j, i in enumerate(members):
            site = self.sites[i]
            values = {}
            bad = []
            for key, spec in METRICS.items():
                if spec.battery and site.battery is None:
                    continue
                v = float(data[key][j, -1])
                if not math.isfinite(v):
                    bad.append(key)
                values[key] = v
            if bad:
                errors[site.id] = f"non-finite values for {', '.join(bad)}"
                continue
            self._states[site.id] = new_states[j]
            samples[i] = SiteSample(site_id=site.id, ts=now_ts, interval_s=interval, values=values)

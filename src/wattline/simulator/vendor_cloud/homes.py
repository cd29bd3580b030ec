"""History of an emulated home (PV + battery + load + grid) for the Selectronic and
SolarEdge emulations, from the simulator's own engine.

A home is a residential :class:`~wattline.simulator.sites.SiteSpec` with a battery,
derived deterministically from its system id and :class:`HomeProfile`. Its history is
simulated with :class:`~wattline.simulator.replay.ReplayRun` on a 5-minute grid
(``STEP_S``) from ``start_ts`` on, extended lazily and carried forward with the
battery state and counters, so a value at an instant never depends on which request
asked for it.

Units: powers kW (interval means over ``(ts - STEP_S, ts]``), state of charge %,
counters kWh (cumulative since the home started, plus the profile's initial value).
``grid_kw`` is import − export, ``battery_kw`` discharge − charge (both kW).
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from wattline.domain.timeutil import local_date, local_midnight
from wattline.simulator.engine import Fleet
from wattline.simulator.replay import ReplayRun
from wattline.simulator.sites import BatterySpec, ClimateSpec, LoadSpec, SiteKind, SiteSpec, equator_facing_azimuth

STEP_S = 300
_CHUNK_S = 7 * 86400  # simulated per extension

COUNTERS = (
    "solar_energy_kwh", "load_energy_kwh", "grid_import_energy_kwh", "grid_export_energy_kwh",
    "battery_charge_energy_kwh", "battery_discharge_energy_kwh",
)
_POWERS = (
    "solar_power_kw", "load_power_kw", "grid_import_power_kw", "grid_export_power_kw",
    "battery_charge_power_kw", "battery_discharge_power_kw", "battery_soc_pct",
)


@dataclass(frozen=True)
class HomeProfile:
    """What an emulated cloud knows about one home system.

    ``start_ts`` UTC epoch s (history begins there); ``pv_kwp`` DC kWp;
    ``battery_kwh`` usable kWh (0: no battery); ``initial_kwh`` the lifetime counters'
    value at the start (kWh, the same for each counter's scale below).
    """

    start_ts: int
    timezone: str = "Australia/Sydney"
    latitude: float = -33.87
    longitude: float = 151.21
    pv_kwp: float = 6.6
    battery_kwh: float = 13.5
    name: str = ""
    initial_kwh: float = 1000.0


def home_site(system_id: str, profile: HomeProfile) -> SiteSpec:
    """The simulated site of a home (orientation and load derive from the id)."""
    seed = zlib.crc32(f"home:{system_id}".encode())
    rng = np.random.default_rng([seed, 0x40E])
    battery = None
    if profile.battery_kwh > 0:
        p = round(profile.battery_kwh * 0.4, 1)
        battery = BatterySpec(capacity_kwh=profile.battery_kwh, max_charge_kw=p, max_discharge_kw=p,
                              soc_min_pct=10.0, soc_max_pct=100.0)
    base = round(0.25 + 0.2 * float(rng.uniform()), 3)
    return SiteSpec(
        id=f"home-{system_id}", name=profile.name or f"home {system_id}", kind=SiteKind.RESIDENTIAL,
        latitude=profile.latitude, longitude=profile.longitude, timezone=profile.timezone,
        pv_capacity_kwp=profile.pv_kwp, tilt_deg=float(np.clip(abs(profile.latitude) * 0.7, 5.0, 30.0)),
        azimuth_deg=equator_facing_azimuth(profile.latitude), battery=battery,
        load=LoadSpec(base_kw=base, peak_kw=round(base * 6.0, 3), cooling_kw_per_c=0.15),
        seed=int(seed), dc_ac_ratio=1.15, climate=ClimateSpec.for_latitude(profile.latitude),
    )


class HomeHistory:
    """The 5-minute samples of one home, extended on demand (thread-safe)."""

    def __init__(self, system_id: str, profile: HomeProfile) -> None:
        self.profile = profile
        self.site = home_site(system_id, profile)
        self._lock = threading.Lock()
        self._first = -(-int(profile.start_ts) // STEP_S) * STEP_S  # first sample
        self._end = self._first  # samples cover [first, end)
        state = Fleet([self.site]).initial_states()[0]
        # lifetime counters that look lived-in: the initial value scaled per counter
        scale = {"solar_energy_kwh": 1.0, "load_energy_kwh": 1.1, "grid_import_energy_kwh": 0.3,
                 "grid_export_energy_kwh": 0.4, "battery_charge_energy_kwh": 0.35,
                 "battery_discharge_energy_kwh": 0.3}
        state.counters_kwh = {k: profile.initial_kwh * scale.get(k, 0.0) for k in state.counters_kwh}
        self._state = {self.site.id: state}
        self._cols: dict[str, np.ndarray] = {k: np.zeros(0) for k in (*COUNTERS, *_POWERS)}
        self._start_counters = np.array([state.counters_kwh[k] for k in COUNTERS])

    def _extend(self, until_ts: int) -> None:
        """Simulate so that every sample with ts <= until_ts exists."""
        with self._lock:
            while self._end <= until_ts:
                b = self._end + _CHUNK_S
                run = ReplayRun([self.site], self._end, b, STEP_S, initial_state=self._state,
                                metrics=[*COUNTERS, *_POWERS])
                parts: dict[str, list[np.ndarray]] = {k: [] for k in self._cols}
                for chunk in run.chunks():
                    for k in self._cols:
                        parts[k].append(chunk.data[k][0])
                for k in self._cols:
                    self._cols[k] = np.concatenate([self._cols[k], *parts[k]])
                self._state = run.final_state()
                self._end = b

    def _index(self, ts: int) -> int:
        return (int(ts) - self._first) // STEP_S

    def counters_at(self, ts: float) -> dict[str, float] | None:
        """Lifetime counters (kWh) at ``ts``, linear between samples; None before the start."""
        if ts < self._first:
            return None
        self._extend(int(ts) + STEP_S)
        i = self._index(int(ts))
        frac = (ts - (self._first + i * STEP_S)) / STEP_S
        out = {}
        for k in COUNTERS:
            col = self._cols[k]
            out[k] = float(col[i] + (col[i + 1] - col[i]) * frac)
        return out

    def today_at(self, ts: float) -> dict[str, float] | None:
        """Counters since local midnight of ``ts`` (kWh); None before the start."""
        now = self.counters_at(ts)
        if now is None:
            return None
        midnight = local_midnight(local_date(int(ts), self.profile.timezone), self.profile.timezone)
        base = self.counters_at(max(midnight, self._first))
        assert base is not None
        return {k: now[k] - base[k] for k in COUNTERS}

    def live_at(self, ts: float) -> dict[str, float] | None:
        """Powers (kW) of the 5-minute interval in progress at ``ts`` and the SoC (%)."""
        if ts < self._first:
            return None
        self._extend(int(ts) + STEP_S)
        i = self._index(int(ts)) + 1  # the sample that closes the interval holding ts
        c = {k: float(self._cols[k][i]) for k in _POWERS}
        return {
            "solar_kw": c["solar_power_kw"],
            "load_kw": c["load_power_kw"],
            "grid_kw": c["grid_import_power_kw"] - c["grid_export_power_kw"],
            "battery_kw": c["battery_discharge_power_kw"] - c["battery_charge_power_kw"],
            "soc_pct": c["battery_soc_pct"],
        }

    def quarter(self, start_ts: int) -> dict[str, float] | None:
        """Energy (kWh) and mean power (kW) of ``[start_ts, start_ts + 900)``; None if
        the quarter begins before the home started."""
        if start_ts < self._first:
            return None
        a, b = self.counters_at(start_ts), self.counters_at(start_ts + 900)
        assert a is not None and b is not None
        energy = {k: b[k] - a[k] for k in COUNTERS}
        i = self._index(start_ts + 900)
        return {**energy, "battery_soc_pct": float(self._cols["battery_soc_pct"][i])}


# Homes kept: a fleet's every home (a 10,000-system bench serves ~3,400 per process;
# each ~0.5 MB for its 14 days). Beyond it the least recently used one goes: emptying
# the whole cache at 1,024 made every call of a larger fleet re-simulate its home's
# history from the start (tens of ms of CPU a call: the emulation saturated).
MAX_HOMES = 16_384
_homes_lock = threading.Lock()
_homes: OrderedDict[tuple[str, HomeProfile], HomeHistory] = OrderedDict()


def home_history(system_id: str, profile: HomeProfile) -> HomeHistory:
    """The (cached) history of one home: the same object for the same id and profile."""
    key = (str(system_id), profile)
    with _homes_lock:
        home = _homes.get(key)
        if home is None:
            while len(_homes) >= MAX_HOMES:
                _homes.popitem(last=False)
            home = _homes[key] = HomeHistory(str(system_id), profile)
        else:
            _homes.move_to_end(key)
        return home

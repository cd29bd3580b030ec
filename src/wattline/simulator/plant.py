"""History of a PV-only plant, as the emulated vendor clouds serve it.

Energy is integrated on a fixed 5-minute base grid that starts when the plant
started operating, so a plant's lifetime counter at a given instant is one number,
whatever window or step asks for it:

* ``energy_total_kwh(ts)`` = sum of base-interval energies ending in
  ``(start, ts]``; per-UTC-day totals are cached per plant, so a request near the
  present does not re-simulate years.
* ``power_kw(ts)`` = mean AC power over ``(ts - step_s, ts]`` (the base energies in
  that interval), so ``energy_total`` differences equal ``power * step`` exactly up
  to rounding, as a vendor's energy and power curves should.
* ``energy_today_kwh(ts)`` = energy since local midnight of the plant's zone (0 at
  midnight itself; the first day counts from the start of operation).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from wattline.domain.timeutil import local_midnight, zone
from wattline.simulator.sites import ClimateSpec, LoadSpec, SiteKind, SiteSpec, equator_facing_azimuth
from wattline.simulator.solar import PVModel
from wattline.simulator.weather import OfflineWeather

BASE_S = 300
DAY_S = 86400
_PER_DAY = DAY_S // BASE_S
_BATCH_DAYS = 92  # days simulated per batch when extending a plant's cache
_CACHE_PLANTS = 512


def plant_site(seed: int, latitude: float, longitude: float, capacity_kw: float, timezone: str) -> SiteSpec:
    """The PV-only site a vendor plant is simulated as (orientation derives from the seed)."""
    rng = np.random.default_rng([int(seed), 0x9A17])
    tilt = float(np.clip(abs(latitude) * 0.8, 5.0, 35.0) + rng.uniform(-3.0, 3.0))
    azimuth = float((equator_facing_azimuth(latitude) + rng.uniform(-15.0, 15.0)) % 360.0)
    return SiteSpec(
        id=f"plant-{seed}", name=f"plant {seed}", kind=SiteKind.UTILITY,
        latitude=float(latitude), longitude=float(longitude), timezone=timezone,
        pv_capacity_kwp=float(capacity_kw), tilt_deg=tilt, azimuth_deg=azimuth, battery=None,
        load=LoadSpec(0.0, 0.0), seed=int(seed), dc_ac_ratio=1.15,
        climate=ClimateSpec.for_latitude(latitude),
    )


@dataclass
class _Plant:
    weather: OfflineWeather
    pv: PVModel
    start_ts: int  # start of operation rounded up to the base grid
    first_day: int  # UTC day of the first base interval
    # cum[i] = energy of all base intervals in UTC days before first_day + i
    cum: list[float] = field(default_factory=lambda: [0.0])
    lock: threading.Lock = field(default_factory=threading.Lock)

    def base_energy_kwh(self, day_from: int, day_to: int) -> np.ndarray:
        """Energy of each base interval of UTC days ``[day_from, day_to)``: (days, 288)."""
        ends = (np.arange(day_from * _PER_DAY, day_to * _PER_DAY, dtype=np.int64) + 1) * BASE_S
        t_mid = ends - BASE_S / 2.0
        power = self.pv.output(t_mid, self.weather.at(t_mid)).ac_power_kw[0]
        energy = np.where(ends - BASE_S >= self.start_ts, power * (BASE_S / 3600.0), 0.0)
        return energy.reshape(day_to - day_from, _PER_DAY)

    def cum_before(self, day: int) -> float:
        """Energy of all base intervals in UTC days before ``day``."""
        i = day - self.first_day
        if i <= 0:
            return 0.0
        with self.lock:
            while len(self.cum) <= i:
                d0 = self.first_day + len(self.cum) - 1
                d1 = min(d0 + _BATCH_DAYS, self.first_day + i)
                # sequential sums (not numpy's pairwise sum) so that a day's total is bit
                # for bit the last within-day running sum: the counter never steps back
                # at midnight, and the cached value never depends on batching
                daily = np.cumsum(self.base_energy_kwh(d0, d1), axis=1)[:, -1]
                running = np.cumsum(np.concatenate([[self.cum[-1]], daily]))
                self.cum.extend(float(x) for x in running[1:])
            return self.cum[i]


_plants: OrderedDict[tuple, _Plant] = OrderedDict()
_plants_lock = threading.Lock()


def _plant(seed, latitude, longitude, capacity_kw, timezone, start_operating_ts) -> _Plant:
    key = (int(seed), float(latitude), float(longitude), float(capacity_kw), timezone, int(start_operating_ts))
    with _plants_lock:
        plant = _plants.get(key)
        if plant is not None:
            _plants.move_to_end(key)
            return plant
    site = plant_site(seed, latitude, longitude, capacity_kw, timezone)
    start = -(-int(start_operating_ts) // BASE_S) * BASE_S
    plant = _Plant(OfflineWeather([site]), PVModel([site]), start, start // DAY_S)
    with _plants_lock:
        plant = _plants.setdefault(key, plant)
        while len(_plants) > _CACHE_PLANTS:
            _plants.popitem(last=False)
    return plant


def plant_history(seed: int, latitude: float, longitude: float, capacity_kw: float, timezone: str,
                  start_operating_ts: int, from_ts: int, to_ts: int, step_s: int = 900) -> dict[str, np.ndarray]:
    """Power and energy history of a simulated PV-only plant.

    Parameters
    ----------
    seed : int
        Plant seed (weather and orientation derive from it).
    latitude, longitude : float
        Plant position. [deg]
    capacity_kw : float
        DC nameplate. [kWp]
    timezone : str
        IANA zone; sets the local midnight of ``energy_today_kwh``.
    start_operating_ts : int
        Start of operation, epoch seconds; nothing is produced or reported before it.
    from_ts, to_ts : int
        Window, epoch seconds: samples at multiples of ``step_s`` in ``[from_ts, to_ts)``
        and not before ``start_operating_ts``.
    step_s : int
        Sample interval, a positive multiple of 300 s. [s]

    Returns
    -------
    dict of ndarray
        ``ts`` (int64 epoch s), ``power_kw`` (mean AC power over the interval ending
        at ``ts``), ``energy_total_kwh`` (AC energy since start of operation),
        ``energy_today_kwh`` (AC energy since local midnight).
    """
    if step_s <= 0 or step_s % BASE_S:
        raise ValueError(f"step_s must be a positive multiple of {BASE_S}")
    if capacity_kw < 0:
        raise ValueError("capacity_kw must be >= 0")
    zone(timezone)
    plant = _plant(seed, latitude, longitude, capacity_kw, timezone, start_operating_ts)
    first = max(int(from_ts), int(start_operating_ts))
    ts = np.arange(-(-first // step_s) * step_s, int(to_ts), step_s, dtype=np.int64)
    if ts.size == 0:
        empty = np.zeros(0)
        return {"ts": ts, "power_kw": empty, "energy_total_kwh": empty.copy(), "energy_today_kwh": empty.copy()}

    midnights = _local_midnights(ts, timezone)
    # earliest base interval needed (by its end): power needs those ending in
    # (ts - step, ts], a total at x needs the one ending at x
    lo_end = min(int(ts[0]) - step_s + BASE_S, int(midnights.min()))
    day_from = max((lo_end - 1) // DAY_S, plant.first_day)
    # at least one day, even when every needed interval precedes the start of operation
    day_to = max((int(ts[-1]) - 1) // DAY_S + 1, day_from + 1)
    energy = plant.base_energy_kwh(day_from, day_to)
    within = np.cumsum(energy, axis=1)  # per-day running sums
    day_start = np.array([plant.cum_before(d) for d in range(day_from, day_to)])
    flat = energy.ravel()

    def total_at(x: np.ndarray) -> np.ndarray:
        x = np.maximum(x, plant.start_ts)
        day = (x - 1) // DAY_S
        j = (x - day * DAY_S) // BASE_S - 1
        row = day - day_from
        # only the start instant of a plant starting at UTC midnight falls before the
        # first computed day, and nothing was produced before it
        inside = row >= 0
        assert np.all(inside | (x <= plant.start_ts))
        rows = np.where(inside, row, 0)
        return np.where(inside, day_start[rows] + within[rows, j], 0.0)

    per = step_s // BASE_S
    last = (ts - day_from * DAY_S) // BASE_S - 1  # flat index of the base interval ending at ts
    idx = last[:, None] - np.arange(per - 1, -1, -1)[None, :]
    contrib = np.where(idx >= 0, flat[np.maximum(idx, 0)], 0.0)
    total = total_at(ts)
    return {
        "ts": ts,
        "power_kw": contrib.sum(axis=1) / (step_s / 3600.0),
        "energy_total_kwh": total,
        "energy_today_kwh": np.maximum(total - total_at(midnights), 0.0),
    }


def _local_midnights(ts: np.ndarray, timezone: str) -> np.ndarray:
    """Epoch seconds of local midnight of the local day containing each ``ts``."""
    local_dates = pd.to_datetime(ts, unit="s", utc=True).tz_convert(timezone).date
    by_date = {d: local_midnight(d, timezone) for d in dict.fromkeys(local_dates)}
    out = np.array([by_date[d] for d in local_dates], dtype=np.int64)
    # zones with offsets off the 5-minute grid (none since 1979) round down to it
    return out - out % BASE_S

"""The one place the emulated clouds get a plant's history from.

:func:`plant_series` returns 15-minute samples (UTC epoch seconds on multiples of
900 s) of power (kW), the cumulative energy counter (kWh since the plant started,
plus its initial value) and today's energy (kWh since local midnight).

Sources (``CloudConfig.history_source``):

* ``"simulator"``: the simulator's PV model, ``wattline.simulator.plant.plant_history``
  (weather, orientation, inverter). The default (``"auto"``) when it is importable.
* ``"clear_sky"``: a deterministic clear-sky-like curve (below), about 20x cheaper;
  for fleet benchmarks where the emulator's CPU would otherwise dominate.

Either way the cumulative counter at an instant does not depend on the window asked
for, so pages, windows and refetches always agree.

The fallback curve: sun elevation from the NOAA declination / equation-of-time
formulas at the plant's latitude and longitude, a Meinel air-mass attenuation, a
deterministic cloud factor per solar day and a little per-step flicker, both from a
seeded hash. History is built per local day: each day's energy starts from a cached
table of day-start counters and is integrated (trapezoid) within the day, so the
values of a day are identical whichever window includes it. A plant's day table costs
one vectorised pass over its life (~66,000 steps for two years, a few ms) and is
cached; windows then cost only their own days.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from importlib import import_module
from typing import Callable, Literal

import numpy as np

from wattline.domain.timeutil import local_date, local_midnight

from .config import PlantProfile, plant_seed

STEP_S = 900
_STEP_H = STEP_S / 3600.0


@dataclass(frozen=True)
class Series:
    """Columns of 15-minute samples; all arrays have the same length."""

    ts: np.ndarray  # int64 UTC epoch s
    power_kw: np.ndarray  # float64 kW
    energy_total_kwh: np.ndarray  # float64 kWh, cumulative counter
    energy_today_kwh: np.ndarray  # float64 kWh since local midnight

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def empty(cls) -> "Series":
        z = np.zeros(0)
        return cls(np.zeros(0, np.int64), z, z, z)

    def slice(self, lo: int, hi: int) -> "Series":
        return self.take(slice(lo, hi))

    def take(self, index: slice | np.ndarray) -> "Series":
        """The samples selected by a slice or boolean mask."""
        return Series(self.ts[index], self.power_kw[index], self.energy_total_kwh[index], self.energy_today_kwh[index])


HistorySource = Literal["auto", "simulator", "clear_sky"]


def plant_series(
    plant_id: str,
    profile: PlantProfile,
    from_ts: int,
    to_ts: int,
    now_ts: float | None = None,
    source: HistorySource = "auto",
) -> Series:
    """Samples with ``from_ts <= ts < to_ts``, from the plant's start up to ``now_ts`` (inclusive).

    ``source``: ``"simulator"`` = the simulator's PV model (``plant_history``),
    ``"clear_sky"`` = the fast curve below, ``"auto"`` = the simulator when importable.
    """
    lo = max(int(from_ts), int(profile.start_operating_ts))
    hi = int(to_ts)
    if now_ts is not None:
        hi = min(hi, int(math.floor(now_ts)) + 1)
    first = -(-lo // STEP_S) * STEP_S
    if first >= hi:
        return Series.empty()
    seed = profile.seed if profile.seed is not None else plant_seed(plant_id)
    simulator = simulator_source() if source in ("auto", "simulator") else None
    if simulator is not None:
        return _simulated(simulator, seed, profile, first, hi)
    if source == "simulator":
        raise RuntimeError("the simulator's plant_history is not importable")
    return _clear_sky(seed, profile, first, hi)


# -- the simulator's PV model, when it exists ---------------------------------------------------

_simulator_lock = threading.Lock()
_simulator_fn: list[Callable | None] = []


def simulator_source() -> Callable | None:
    """``plant_history`` of the simulator if importable (looked up once per process)."""
    with _simulator_lock:
        if not _simulator_fn:
            fn = None
            for module in ("wattline.simulator.plant", "wattline.simulator.replay"):
                try:
                    fn = getattr(import_module(module), "plant_history")
                    break
                except (ImportError, AttributeError):
                    continue
            _simulator_fn.append(fn)
        return _simulator_fn[0]


@lru_cache(maxsize=256)  # the pages of one window ask for the same window again
def _simulated(fn: Callable, seed: int, profile: PlantProfile, first: int, hi: int) -> Series:
    data = fn(
        seed=seed,
        latitude=profile.latitude,
        longitude=profile.longitude,
        capacity_kw=profile.capacity_kw,
        timezone=profile.timezone,
        start_operating_ts=profile.start_operating_ts,
        from_ts=first,
        # at least two samples: plant_history raises IndexError when a window holds only
        # the sample at the start instant of a plant starting at UTC midnight
        to_ts=max(hi, first + 2 * STEP_S),
        step_s=STEP_S,
    )
    ts = np.asarray(data["ts"], dtype=np.int64)
    keep = (ts >= first) & (ts < hi)
    return Series(
        ts[keep],
        np.asarray(data["power_kw"], dtype=np.float64)[keep],
        np.asarray(data["energy_total_kwh"], dtype=np.float64)[keep] + profile.initial_energy_kwh,
        np.asarray(data["energy_today_kwh"], dtype=np.float64)[keep],
    )


def warm(plant_id: str, profile: PlantProfile, now_ts: float, source: HistorySource = "auto") -> None:
    """Build a plant's caches up to ``now_ts`` (so its first request answers quickly)."""
    plant_series(plant_id, profile, int(now_ts) - STEP_S, int(now_ts) + 1, now_ts, source)


# -- fallback: deterministic clear-sky-like PV ----------------------------------------------


def _hash01(x: np.ndarray, seed: int) -> np.ndarray:
    """Uniform [0, 1) per integer in ``x`` (splitmix64), stable across runs and platforms."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % 2**64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (2.0**-53)


def _sun_terms(day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Declination (rad) and equation of time (min) per UTC day number (NOAA)."""
    gamma = 2.0 * np.pi * ((day + 0.5) % 365.2422) / 365.2422  # fractional year
    decl = (
        0.006918 - 0.399912 * np.cos(gamma) + 0.070257 * np.sin(gamma)
        - 0.006758 * np.cos(2 * gamma) + 0.000907 * np.sin(2 * gamma)
        - 0.002697 * np.cos(3 * gamma) + 0.00148 * np.sin(3 * gamma)
    )
    eqtime = 229.18 * (
        0.000075 + 0.001868 * np.cos(gamma) - 0.032077 * np.sin(gamma)
        - 0.014615 * np.cos(2 * gamma) - 0.040849 * np.sin(2 * gamma)
    )
    return decl, eqtime


def clear_sky_power(ts: np.ndarray, profile: PlantProfile, seed: int) -> np.ndarray:
    """Power in kW at each UTC epoch second in ``ts`` (0 before the plant started).

    A pure function of each timestamp: the same instant gives the same value in any
    batch, which keeps pages and windows consistent.
    """
    ts = np.asarray(ts, dtype=np.int64)
    if len(ts) == 0:
        return np.zeros(0)
    lit, clear = _sky(ts, profile.latitude, profile.longitude, profile.start_operating_ts)
    return _seeded_power(ts, lit, clear, profile, seed)


def _grid_power(lo: int, hi: int, profile: PlantProfile, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(ts, power kW) on the grid ``lo, lo + STEP_S, .. <= hi``: :func:`clear_sky_power`
    with the sun's part shared by every plant at the same place and start (a fleet's
    first touches of one day grid, or of its whole history, compute it once)."""
    ts = np.arange(lo, hi + 1, STEP_S, dtype=np.int64)
    if len(ts) == 0:
        return ts, np.zeros(0)
    lit, clear = _shared_sky(int(lo), int(hi), profile.latitude, profile.longitude, profile.start_operating_ts)
    return ts, _seeded_power(ts, lit, clear, profile, seed)


@lru_cache(maxsize=512)  # per place, start and grid: whole histories (first touches) and days
def _shared_sky(lo: int, hi: int, latitude: float, longitude: float, start_ts: int):
    lit, clear = _sky(np.arange(lo, hi + 1, STEP_S, dtype=np.int64), latitude, longitude, start_ts)
    for a in (lit, clear):
        a.flags.writeable = False  # shared between plants
    return lit, clear


def _sky(ts: np.ndarray, latitude: float, longitude: float, start_ts: int) -> tuple[np.ndarray, np.ndarray]:
    """The plant-independent part: which samples are lit (sun up, plant started) and
    the clear-sky fraction at those."""
    # seasonal terms once per UTC day, not per sample (they change slowly)
    day = ts // 86400
    d0 = int(day.min())
    decl_d, eqt_d = _sun_terms(np.arange(d0, int(day.max()) + 1, dtype=np.float64))
    idx = day - d0
    solar_min = (ts % 86400) / 60.0 + eqt_d[idx] + 4.0 * longitude
    lat = math.radians(latitude)
    decl = decl_d[idx]
    cos_z = math.sin(lat) * np.sin(decl) + math.cos(lat) * np.cos(decl) * np.cos(
        np.radians(solar_min / 4.0 - 180.0)
    )
    lit = (cos_z > 0.0) & (ts >= start_ts)
    cz = np.minimum(cos_z[lit], 1.0)
    clear = cz * 0.7 ** ((1.0 / np.maximum(cz, 0.02)) ** 0.678) / 0.7  # Meinel air mass
    return lit, clear


def _seeded_power(ts: np.ndarray, lit: np.ndarray, clear: np.ndarray, profile: PlantProfile,
                  seed: int) -> np.ndarray:
    """The plant's own part: its weather (from its seed) and capacity."""
    power = np.zeros(len(ts))
    if not lit.any():
        return power
    ts_l = ts[lit]
    # weather: one cloud factor per solar day (changes at solar midnight), plus flicker
    solar_day = (ts_l + int(round(profile.longitude * 240.0))) // 86400
    u = _hash01(solar_day, seed)
    cloud = 1.0 - 0.7 * u * u  # mostly clear days, some dull ones (0.3..1.0)
    flicker = 1.0 - 0.3 * (1.0 - cloud) * _hash01(ts_l // STEP_S, seed ^ 0x5BD1E995)
    power[lit] = np.clip(profile.capacity_kw * 0.92 * clear * cloud * flicker, 0.0, profile.capacity_kw)
    return power


DAYS_KEPT = 3  # a plant's days of samples kept (today, yesterday, a window's other end)


class _FallbackPlant:
    """Day-organised history of one plant: a day-start counter table plus per-day integration."""

    def __init__(self, profile: PlantProfile, seed: int) -> None:
        self.profile = profile
        self.seed = seed
        self._lock = threading.Lock()
        self._day0 = local_date(profile.start_operating_ts, profile.timezone)
        self._midnights: list[int] = [local_midnight(self._day0, profile.timezone)]
        self._day_start = np.array([profile.initial_energy_kwh])  # counter at each midnight
        self._day_total = np.zeros(0)  # energy of each day (kWh)
        self._days: OrderedDict[int, tuple] = OrderedDict()  # day index -> its samples (see _day)

    def _midnight(self, i: int) -> int:
        return local_midnight(self._day0 + timedelta(days=i), self.profile.timezone)

    def _increments(self, ts: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Energy (kWh) of each step ``ts[k] -> ts[k+1]`` by the trapezoid rule.

        Steps that begin before the plant started count nothing, so the counter
        starts at its initial value on the first sample.
        """
        inc = (p[:-1] + p[1:]) * (0.5 * _STEP_H)
        inc[ts[:-1] < self.profile.start_operating_ts] = 0.0
        return inc

    def _ensure_days(self, n: int) -> None:
        """Extend the tables to cover days ``0..n-1`` (and midnight ``n``)."""
        with self._lock:
            have = len(self._day_start) - 1  # days whose total is known
            while len(self._midnights) <= n:
                self._midnights.append(self._midnight(len(self._midnights)))
            if have >= n:
                return
            mids = np.asarray(self._midnights[have : n + 1], dtype=np.int64)
            ts, p = _grid_power(int(mids[0]), int(mids[-1]), self.profile, self.seed)
            inc = self._increments(ts, p)
            totals = np.add.reduceat(inc, (mids[:-1] - mids[0]) // STEP_S)
            self._day_total = np.concatenate([self._day_total, totals])
            self._day_start = np.concatenate([self._day_start, self._day_start[-1] + np.cumsum(totals)])

    def _day(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(ts, power, counter, today) of local day ``i``'s samples (its tables known);
        the last few days asked for are kept: a poll's window is within today."""
        with self._lock:
            got = self._days.get(i)
            if got is not None:
                self._days.move_to_end(i)
                return got
        mid = self._midnights[i]
        grid, p = _grid_power(mid, self._midnights[i + 1], self.profile, self.seed)
        inc = self._increments(grid, p)
        today = np.concatenate([[0.0], np.cumsum(inc[:-1])])  # at each sample of day i
        # the day total was summed in another order: clamp so rounding can never
        # put a sample above the next midnight's counter
        today = np.minimum(today, self._day_total[i])
        got = (grid[:-1], p[:-1], self._day_start[i] + today, today)
        with self._lock:
            self._days[i] = got
            while len(self._days) > DAYS_KEPT:
                self._days.popitem(last=False)
        return got

    def _day_index(self, ts: int) -> int:
        """Index of the local day holding ``ts`` (days are counted from the start day)."""
        d = local_date(ts, self.profile.timezone)
        return (d - self._day0).days

    def series(self, first: int, hi: int) -> Series:
        d_first, d_last = self._day_index(first), self._day_index(hi - 1)
        self._ensure_days(d_last + 1)
        parts = []
        for i in range(d_first, d_last + 1):
            ts, p, total, today = self._day(i)
            keep = (ts >= first) & (ts < hi)
            parts.append((ts[keep], p[keep], total[keep], today[keep]))
        ts, power, total, today = (np.concatenate(c) for c in zip(*parts))
        # the first day may begin before the plant did: nothing generated yet
        return Series(ts, power, total, today)


@lru_cache(maxsize=256)  # the pages of one window ask for the same window again
def _clear_sky(seed: int, profile: PlantProfile, first: int, hi: int) -> Series:
    return _fallback_plant(profile, seed).series(first, hi)


# Plants kept (a fleet's every plant; least recently used out beyond it). Emptying
# the cache at 4,096 made a larger fleet's every call recompute its plant's days.
MAX_PLANTS = 32_768
_plants_lock = threading.Lock()
_plants: OrderedDict[tuple[PlantProfile, int], _FallbackPlant] = OrderedDict()


def _fallback_plant(profile: PlantProfile, seed: int) -> _FallbackPlant:
    key = (profile, seed)
    with _plants_lock:
        plant = _plants.get(key)
        if plant is None:
            while len(_plants) >= MAX_PLANTS:
                _plants.popitem(last=False)
            plant = _plants[key] = _FallbackPlant(profile, seed)
        else:
            _plants.move_to_end(key)
        return plant

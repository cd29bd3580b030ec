"""Instantaneous power flow of an emulated home (PV + battery + load + grid), for the
Fronius and Mondo emulations.

Solar comes from :func:`.history.plant_series` (the simulator's PV model), linearly
interpolated between its 15-minute samples, so values are realistic and never depend
on which request asked. Load is a deterministic daily shape (base, morning and evening
peaks, kW); the battery takes the surplus up to ``charge_kw`` and covers the deficit up
to ``discharge_kw``; the grid balances the rest (+ import). Counters are monotonic kWh.

Signs: ``battery_kw`` + = charging, ``grid_kw`` + = import; all kW.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from wattline.domain.timeutil import local_date, local_midnight

from .config import PlantProfile
from .history import STEP_S, plant_series


@dataclass(frozen=True)
class Flow:
    """One instant: powers kW, state of charge %, counters kWh since the home started."""

    ts: int
    solar_kw: float
    load_kw: float
    battery_kw: float
    grid_kw: float
    soc_pct: float
    solar_kwh: float
    solar_today_kwh: float
    grid_import_kwh: float
    grid_export_kwh: float
    battery_kwh: float
    other_kwh: float


def load_kw(ts: int, timezone: str) -> float:
    """Household load (kW) at ``ts``: 0.45 kW base, a morning and an evening peak."""
    h = (ts - local_midnight(local_date(ts, timezone), timezone)) / 3600.0
    return 0.45 + 0.9 * math.exp(-(((h - 7.5) / 1.2) ** 2)) + 1.8 * math.exp(-(((h - 19.0) / 1.8) ** 2))


def _solar(plant_id: str, profile: PlantProfile, ts: int, source: str) -> tuple[float, float, float]:
    """(power kW, lifetime kWh, today kWh) at ``ts``, interpolated between 15-minute samples."""
    lo = ts - ts % STEP_S
    s = plant_series(plant_id, profile, lo, lo + STEP_S + 1, None, source)  # type: ignore[arg-type]
    if len(s) == 0:
        return 0.0, profile.initial_energy_kwh, 0.0
    if len(s) == 1:
        return float(s.power_kw[0]), float(s.energy_total_kwh[0]), float(s.energy_today_kwh[0])
    w = (ts - int(s.ts[0])) / STEP_S
    power = float(s.power_kw[0] + w * (s.power_kw[1] - s.power_kw[0]))
    total = float(s.energy_total_kwh[0] + w * (s.energy_total_kwh[1] - s.energy_total_kwh[0]))
    today = float(s.energy_today_kwh[0] + w * max(float(s.energy_today_kwh[1] - s.energy_today_kwh[0]), 0.0))
    if local_date(int(s.ts[1]), profile.timezone) != local_date(int(s.ts[0]), profile.timezone):
        today = float(s.energy_today_kwh[0])  # the next sample is after midnight: no carry-over
    return power, total, today


def home_flow(plant_id: str, profile: PlantProfile, ts: int, source: str = "auto",
              charge_kw: float = 5.0, discharge_kw: float = 3.0) -> Flow:
    """The home's flow at instant ``ts`` (UTC epoch s)."""
    ts = int(ts)
    solar, solar_total, solar_today = _solar(plant_id, profile, ts, source)
    load = load_kw(ts, profile.timezone)
    battery = float(np.clip(solar - load, -discharge_kw, charge_kw))
    grid = load + battery - solar
    h = (ts - local_midnight(local_date(ts, profile.timezone), profile.timezone)) / 3600.0
    # charges from 08:00 (20 %) to a peak at midnight (95 %), then drops back overnight
    soc = 20.0 + 75.0 * (0.5 - 0.5 * math.cos(2 * math.pi * min(max(h - 8.0, 0.0), 16.0) / 32.0))
    days = max(ts - profile.start_operating_ts, 0) / 86400.0
    base = profile.initial_energy_kwh
    return Flow(ts, round(solar, 4), round(load, 4), round(battery, 4), round(grid, 4), round(soc, 1),
                solar_total, solar_today, base + 9.0 * days, base + 0.6 * solar_total, base + 6.0 * days,
                base + 2.5 * days)

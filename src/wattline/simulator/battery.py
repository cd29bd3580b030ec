"""Stateful batteries: state of charge, losses, temperature, voltage, ageing.

Dispatch is self-consumption: a battery charges only from PV surplus and
discharges only to cover the site's deficit, within its power limits and its SOC
window. Charging and discharging each cost ``sqrt(round_trip_efficiency)``.

Per step (interval ``dt``), for every site at once:

* SOC: ``soc' = clip(soc + d, soc_min, soc_max)`` where ``d`` is the SOC change the
  requested power would cause. This is the only sequential recursion; it is three
  numpy ops per step over all sites.
* AC flows follow from the SOC change actually made; losses are the difference
  between AC energy and the energy stored in (or taken from) the cells.
* Temperature: first-order lag (time constant 2 h) towards ambient plus heating
  proportional to the power flow (+8 degC at full power).
* Voltage: LFP open-circuit voltage curve over SOC, times cells in series, plus
  ``I * R`` (3 % of nominal voltage at full power).
* Ageing: capacity fade per equivalent full cycle (20 % over 6,000 cycles) plus
  calendar fade (1.5 %/year), both doubled per 10 degC above 25 degC.
* Usable capacity follows health once per UTC day: fade is ~0.01 %/day, so finer
  updates change nothing measurable, and it keeps the SOC recursion free of
  the ageing model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from wattline.simulator.sites import BatterySpec

DAY_S = 86400
THERMAL_TIME_CONSTANT_S = 7200.0
HEATING_AT_FULL_POWER_C = 8.0
IR_DROP_AT_FULL_POWER = 0.03
CYCLE_FADE_PCT_PER_EFC = 20.0 / 6000.0
CALENDAR_FADE_PCT_PER_YEAR = 1.5
HOURS_PER_YEAR = 8766.0

# LFP cell open-circuit voltage over SOC (flat plateau, steep ends)
OCV_SOC_PCT = np.array([0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100], dtype=np.float64)
OCV_CELL_V = np.array([2.80, 3.05, 3.18, 3.24, 3.27, 3.29, 3.30, 3.31, 3.32, 3.33, 3.36, 3.40, 3.55])
CELL_NOMINAL_V = 3.2


def open_circuit_voltage_v(soc_pct, cells_series) -> np.ndarray:
    """Pack open-circuit voltage at a state of charge. [V]"""
    soc = np.asarray(soc_pct, dtype=np.float64)
    return np.interp(soc.ravel(), OCV_SOC_PCT, OCV_CELL_V).reshape(soc.shape) * cells_series


@dataclass
class BatteryState:
    """State of one battery, carried from step to step (and persisted by live mode).

    Attributes
    ----------
    soc_pct : float
        State of charge, as a share of today's usable capacity. [%]
    temperature_c : float
        Cell temperature. [degC]
    health_pct : float
        Remaining capacity relative to new. [%]
    cycles : float
        Equivalent full cycles (discharged energy / nameplate capacity).
    capacity_health_pct : float
        The health that sets today's usable capacity (refreshed once a UTC day). [%]
    capacity_day : int
        UTC day number (epoch days) of that refresh; -1 before the first step.
    """

    soc_pct: float
    temperature_c: float = 20.0
    health_pct: float = 100.0
    cycles: float = 0.0
    capacity_health_pct: float = 100.0
    capacity_day: int = -1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BatteryState":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        state = cls(**known)
        state.capacity_day = int(state.capacity_day)
        for name in ("soc_pct", "temperature_c", "health_pct", "cycles", "capacity_health_pct"):
            setattr(state, name, float(getattr(state, name)))
        return state

    @classmethod
    def initial(cls, spec: BatterySpec, temperature_c: float = 20.0) -> "BatteryState":
        """A new battery in the middle of its SOC window."""
        return cls(soc_pct=(spec.soc_min_pct + spec.soc_max_pct) / 2.0, temperature_c=temperature_c)


@dataclass
class BatteryFlows:
    """Battery results over (sites, steps); battery-less sites have zero flows and NaN state.

    Attributes
    ----------
    charge_kw, discharge_kw : ndarray (S, K)
        AC power into / out of the battery inverter (interval mean). [kW]
    loss_kw : ndarray (S, K)
        Conversion losses: AC in minus stored, or taken from cells minus AC out. [kW]
    soc_pct, temperature_c, voltage_v, current_a, health_pct, cycles : ndarray (S, K)
        End-of-interval state; current positive when charging.
    """

    charge_kw: np.ndarray
    discharge_kw: np.ndarray
    loss_kw: np.ndarray
    soc_pct: np.ndarray
    temperature_c: np.ndarray
    voltage_v: np.ndarray
    current_a: np.ndarray
    health_pct: np.ndarray
    cycles: np.ndarray
    usable_capacity_kwh: np.ndarray


class BatteryBank:
    """The batteries of a set of sites (``None`` entries: no battery), stepped together.

    Parameters
    ----------
    specs : sequence of BatterySpec or None
    """

    def __init__(self, specs: Sequence[BatterySpec | None]):
        self.specs = list(specs)
        present = [b is not None for b in specs]
        self.has_battery = np.array(present, dtype=bool)
        get = lambda attr, default: np.array(  # noqa: E731
            [getattr(b, attr) if b is not None else default for b in specs], dtype=np.float64
        )
        self.capacity_kwh = get("capacity_kwh", 1.0)  # 1.0: avoids 0/0 for inert sites
        self.max_charge_kw = get("max_charge_kw", 0.0)
        self.max_discharge_kw = get("max_discharge_kw", 0.0)
        self.soc_min_pct = get("soc_min_pct", 0.0)
        self.soc_max_pct = get("soc_max_pct", 0.0)
        rte = get("round_trip_efficiency", 1.0)
        self.eta = np.sqrt(rte)  # one-way efficiency, charging and discharging alike
        self.cells_series = get("cells_series", 1.0)
        nominal_v = self.cells_series * CELL_NOMINAL_V
        p_max = np.maximum(np.maximum(self.max_charge_kw, self.max_discharge_kw), 1e-9)
        self.resistance_ohm = IR_DROP_AT_FULL_POWER * nominal_v**2 / (p_max * 1000.0)
        self.heating_c_per_kw = HEATING_AT_FULL_POWER_C / p_max

    def __len__(self) -> int:
        return len(self.specs)

    def initial_states(self, temperature_c: float = 20.0) -> list[BatteryState | None]:
        return [BatteryState.initial(b, temperature_c) if b is not None else None for b in self.specs]

    def run(self, state: "BatteryArrays", request_kw: np.ndarray, ambient_c: np.ndarray,
            dt_s: np.ndarray, ts_end: np.ndarray) -> BatteryFlows:
        """Step every battery through ``K`` intervals; ``state`` is updated in place.

        Parameters
        ----------
        state : BatteryArrays
            State at the start of the first interval.
        request_kw : ndarray (S, K)
            PV surplus (positive: available to charge) or deficit (negative). [kW]
        ambient_c : ndarray (S, K)
            Air temperature around the battery. [degC]
        dt_s : ndarray (K,)
            Length of each interval. [s]
        ts_end : ndarray (K,)
            End of each interval, epoch seconds.
        """
        n_sites, n_steps = request_kw.shape
        out = BatteryFlows(*(np.empty((n_sites, n_steps)) for _ in range(10)))
        dt_s = np.asarray(dt_s, dtype=np.float64)
        # the UTC day an interval (ts - dt, ts] belongs to is that of its last instant
        day = (np.asarray(ts_end, dtype=np.int64) - 1) // DAY_S
        cuts = np.flatnonzero(np.diff(day)) + 1
        bounds = [0, *cuts.tolist(), n_steps]
        for a, b in zip(bounds[:-1], bounds[1:]):
            self._run_day(state, request_kw[:, a:b], ambient_c[:, a:b], dt_s[a:b], int(day[a]), out, a)
        inert = ~self.has_battery
        if inert.any():
            for arr in (out.charge_kw, out.discharge_kw, out.loss_kw, out.usable_capacity_kwh):
                arr[inert] = 0.0
            for arr in (out.soc_pct, out.temperature_c, out.voltage_v, out.current_a, out.health_pct, out.cycles):
                arr[inert] = np.nan
        return out

    def _run_day(self, st: "BatteryArrays", req: np.ndarray, ambient: np.ndarray, dt_s: np.ndarray,
                 day: int, out: BatteryFlows, col: int) -> None:
        n = req.shape[1]
        sl = slice(col, col + n)
        refresh = st.capacity_day != day
        st.capacity_health_pct = np.where(refresh, st.health_pct, st.capacity_health_pct)
        st.capacity_day = np.where(refresh, day, st.capacity_day)
        cap = (self.capacity_kwh * st.capacity_health_pct / 100.0)[:, None]
        eta = self.eta[:, None]
        dt_h = dt_s / 3600.0

        charge_req = np.clip(req, 0.0, self.max_charge_kw[:, None])
        discharge_req = np.clip(-req, 0.0, self.max_discharge_kw[:, None])
        d_soc = (charge_req * eta - discharge_req / eta) * dt_h * (100.0 / cap)

        # the one sequential part: time-major so each step is a contiguous row
        d_rows = np.ascontiguousarray(d_soc.T)
        path = np.empty((n + 1, req.shape[0]))
        path[0] = st.soc_pct
        lo, hi = self.soc_min_pct, self.soc_max_pct
        if req.shape[0] == 1 and np.isfinite(lo).all() and np.isfinite(hi).all():
            # one battery (an emulated cloud's home): the same steps on Python floats,
            # ~10x faster than three ufunc calls a step on rows of one
            x, low, high = float(path[0, 0]), float(lo[0]), float(hi[0])
            walk = [x]
            for d in d_rows[:, 0].tolist():
                x = max(min(x + d, high), low)  # np.minimum then np.maximum, as below
                walk.append(x)
            path[:, 0] = walk
        else:
            for j in range(n):
                row = path[j + 1]
                np.add(path[j], d_rows[j], out=row)
                np.minimum(row, hi, out=row)
                np.maximum(row, lo, out=row)
        soc = path[1:].T
        delta_soc = np.diff(path, axis=0).T

        stored_kwh = delta_soc * (cap / 100.0)  # + into the cells, - out of them
        stored_kw = stored_kwh / dt_h
        charge_kw = np.where(delta_soc > 0, stored_kw / eta, 0.0)
        discharge_kw = np.where(delta_soc < 0, -stored_kw * eta, 0.0)
        loss_kw = charge_kw * (1.0 - eta) + discharge_kw * (1.0 / eta - 1.0)

        # temperature: T_j = T_{j-1} + alpha_j * (target_j - T_{j-1})
        target = ambient + self.heating_c_per_kw[:, None] * (charge_kw + discharge_kw)
        alpha = 1.0 - np.exp(-dt_s / THERMAL_TIME_CONSTANT_S)
        if np.all(alpha == alpha[0]):
            a0 = alpha[0]
            from scipy.signal import lfilter  # here, not at import: scipy.signal costs ~1 s to load

            temp, _ = lfilter([a0], [1.0, -(1.0 - a0)], target, axis=1, zi=((1.0 - a0) * st.temperature_c)[:, None])
        else:
            temp = np.empty_like(target)
            prev = st.temperature_c
            for j in range(n):
                prev = prev + alpha[j] * (target[:, j] - prev)
                temp[:, j] = prev

        discharged_efc = np.maximum(-stored_kwh, 0.0) / self.capacity_kwh[:, None]
        stress = np.exp2((temp - 25.0) / 10.0)
        fade = (discharged_efc * CYCLE_FADE_PCT_PER_EFC + dt_h * (CALENDAR_FADE_PCT_PER_YEAR / HOURS_PER_YEAR)) * stress
        health = st.health_pct[:, None] - np.cumsum(fade, axis=1)
        cycles = st.cycles[:, None] + np.cumsum(discharged_efc, axis=1)

        ocv = open_circuit_voltage_v(soc, self.cells_series[:, None])
        current = stored_kw * 1000.0 / ocv
        out.soc_pct[:, sl] = soc
        out.charge_kw[:, sl] = charge_kw
        out.discharge_kw[:, sl] = discharge_kw
        out.loss_kw[:, sl] = loss_kw
        out.temperature_c[:, sl] = temp
        out.voltage_v[:, sl] = ocv + current * self.resistance_ohm[:, None]
        out.current_a[:, sl] = current
        out.health_pct[:, sl] = health
        out.cycles[:, sl] = cycles
        out.usable_capacity_kwh[:, sl] = cap

        st.soc_pct = path[-1].copy()
        st.temperature_c = temp[:, -1].copy()
        st.health_pct = health[:, -1].copy()
        st.cycles = cycles[:, -1].copy()


@dataclass
class BatteryArrays:
    """Column form of :class:`BatteryState` for a bank (inert sites hold placeholders)."""

    soc_pct: np.ndarray
    temperature_c: np.ndarray
    health_pct: np.ndarray
    cycles: np.ndarray
    capacity_health_pct: np.ndarray
    capacity_day: np.ndarray

    @classmethod
    def from_states(cls, bank: BatteryBank, states: Sequence[BatteryState | None]) -> "BatteryArrays":
        filled = [s if s is not None else BatteryState(soc_pct=0.0) for s in states]
        f = lambda name: np.array([getattr(s, name) for s in filled], dtype=np.float64)  # noqa: E731
        arrays = cls(
            soc_pct=f("soc_pct"),
            temperature_c=f("temperature_c"),
            health_pct=f("health_pct"),
            cycles=f("cycles"),
            capacity_health_pct=f("capacity_health_pct"),
            capacity_day=np.array([s.capacity_day for s in filled], dtype=np.int64),
        )
        # a restored SOC outside today's window (limits changed) is brought inside it:
        # the clip in the recursion must never be what moves energy
        arrays.soc_pct = np.clip(arrays.soc_pct, bank.soc_min_pct, bank.soc_max_pct)
        return arrays

    def to_states(self, bank: BatteryBank) -> list[BatteryState | None]:
        states: list[BatteryState | None] = []
        for i, present in enumerate(bank.has_battery):
            if not present:
                states.append(None)
                continue
            states.append(
                BatteryState(
                    soc_pct=float(self.soc_pct[i]),
                    temperature_c=float(self.temperature_c[i]),
                    health_pct=float(self.health_pct[i]),
                    cycles=float(self.cycles[i]),
                    capacity_health_pct=float(self.capacity_health_pct[i]),
                    capacity_day=int(self.capacity_day[i]),
                )
            )
        return states

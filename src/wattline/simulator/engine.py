"""One simulation step function for a fleet, shared by replay and live mode.

:meth:`Fleet.simulate` advances a set of sites through ``K`` consecutive intervals
(``(ts_end - dt, ts_end]``): weather, PV, load, battery dispatch, grid, inverter
metrics and energy counters, vectorised over (sites, steps). Replay calls it on
long chunks, live mode on one interval at a time; both give the same numbers.

Energy accounting (all AC, interval means, kW; counters in kWh):

* the site bus balances exactly at every step::

      solar + grid_import + battery_discharge = load + grid_export + battery_charge

* the battery's losses are behind its own meter::

      stored_energy_change = (battery_charge - battery_discharge - battery_loss) * dt

  so, counting the battery by what enters and leaves its cells
  (``charge_cells = charge - loss_charging``, ``discharge_cells = discharge + loss_discharging``)::

      solar + import + discharge_cells = load + export + charge_cells + battery_loss

* grid import and export are never both non-zero (self-consumption dispatch: the
  battery never charges from nor discharges to the grid).

Power values are interval means evaluated at the middle of the interval; a
counter at ``ts`` includes the interval ending at ``ts``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from wattline.domain.metrics import MetricType
from wattline.simulator import clock, noise
from wattline.simulator.battery import BatteryArrays, BatteryBank, BatteryState
from wattline.simulator.inverter import InverterModel
from wattline.simulator.load import LoadModel
from wattline.simulator.sites import SiteSpec
from wattline.simulator.solar import PVModel
from wattline.simulator.weather import HOUR_S, KnotInterpolator, OfflineWeather, hour_span

_JITTER_STREAM = 30
_SQRT6 = np.sqrt(6.0)


@dataclass(frozen=True)
class MetricSpec:
    key: str
    metric_type: MetricType
    unit: str
    description: str
    battery: bool = False  # only meaningful for sites with a battery
    # replay storage: powers, energies and SOC stay float64 (balances are checked
    # to 1e-9); descriptive readings keep 7 significant digits, more than any sensor
    dtype: str = "float64"


def _m(key, mtype, unit, text, battery=False):
    return MetricSpec(key, mtype, unit, text, battery, "float64" if mtype in (MetricType.POWER, MetricType.COUNTER, MetricType.SOC) else "float32")


_P, _C, _T, _V, _A, _S = (MetricType.POWER, MetricType.COUNTER, MetricType.TEMPERATURE, MetricType.VOLTAGE,
                          MetricType.CURRENT, MetricType.STATE)

#: Every metric a simulated site reports, in output order.
METRICS: dict[str, MetricSpec] = {
    m.key: m
    for m in [
        _m("solar_power_kw", _P, "kW", "PV inverter AC output"),
        _m("pv_dc_power_kw", _P, "kW", "PV array DC output"),
        _m("load_power_kw", _P, "kW", "site consumption"),
        _m("grid_import_power_kw", _P, "kW", "power bought from the grid"),
        _m("grid_export_power_kw", _P, "kW", "power sold to the grid"),
        _m("battery_charge_power_kw", _P, "kW", "AC power into the battery", True),
        _m("battery_discharge_power_kw", _P, "kW", "AC power out of the battery", True),
        _m("battery_loss_power_kw", _P, "kW", "battery conversion losses", True),
        _m("battery_soc_pct", MetricType.SOC, "%", "battery state of charge", True),
        _m("battery_voltage_v", _V, "V", "battery pack voltage", True),
        _m("battery_current_a", _A, "A", "battery current, + charging", True),
        _m("battery_temperature_c", _T, "degC", "battery cell temperature", True),
        _m("battery_health_pct", _S, "%", "battery capacity relative to new", True),
        _m("battery_cycles", _S, "", "equivalent full cycles", True),
        _m("pv_dc_voltage_v", _V, "V", "PV string DC voltage"),
        _m("pv_dc_current_a", _A, "A", "PV DC current"),
        _m("inverter_ac_voltage_v", _V, "V", "AC voltage at the inverter"),
        _m("grid_frequency_hz", MetricType.FREQUENCY, "Hz", "grid frequency"),
        _m("inverter_temperature_c", _T, "degC", "PV inverter temperature"),
        _m("inverter_efficiency_pct", _S, "%", "PV inverter AC/DC efficiency"),
        _m("ambient_temperature_c", _T, "degC", "air temperature"),
        _m("cell_temperature_c", _T, "degC", "PV cell temperature"),
        _m("cloud_cover_pct", _S, "%", "cloud cover"),
        _m("wind_speed_ms", _S, "m/s", "wind speed"),
        _m("ghi_w_m2", _S, "W/m2", "global horizontal irradiance"),
        _m("poa_w_m2", _S, "W/m2", "plane-of-array irradiance"),
        _m("solar_energy_kwh", _C, "kWh", "PV AC energy counter"),
        _m("load_energy_kwh", _C, "kWh", "consumption counter"),
        _m("grid_import_energy_kwh", _C, "kWh", "grid import counter"),
        _m("grid_export_energy_kwh", _C, "kWh", "grid export counter"),
        _m("battery_charge_energy_kwh", _C, "kWh", "battery AC charge counter", True),
        _m("battery_discharge_energy_kwh", _C, "kWh", "battery AC discharge counter", True),
        _m("battery_loss_energy_kwh", _C, "kWh", "battery loss counter", True),
    ]
}

#: counter -> the interval-mean power it integrates
COUNTERS: dict[str, str] = {
    "solar_energy_kwh": "solar_power_kw",
    "load_energy_kwh": "load_power_kw",
    "grid_import_energy_kwh": "grid_import_power_kw",
    "grid_export_energy_kwh": "grid_export_power_kw",
    "battery_charge_energy_kwh": "battery_charge_power_kw",
    "battery_discharge_energy_kwh": "battery_discharge_power_kw",
    "battery_loss_energy_kwh": "battery_loss_power_kw",
}


@dataclass
class SiteState:
    """What one site carries from step to step: battery state and energy counters.

    Attributes
    ----------
    battery : BatteryState or None
    counters_kwh : dict
        Value of each counter in :data:`COUNTERS`. [kWh]
    last_ts : int or None
        End of the last simulated interval (live mode), epoch seconds.
    """

    battery: BatteryState | None
    counters_kwh: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0.0))
    last_ts: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "battery": self.battery.to_dict() if self.battery is not None else None,
            "counters_kwh": {k: float(v) for k, v in self.counters_kwh.items()},
            "last_ts": self.last_ts,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SiteState":
        counters = dict.fromkeys(COUNTERS, 0.0)
        counters.update({k: float(v) for k, v in (d.get("counters_kwh") or {}).items() if k in COUNTERS})
        battery = d.get("battery")
        last = d.get("last_ts")
        return cls(
            battery=BatteryState.from_dict(battery) if battery else None,
            counters_kwh=counters,
            last_ts=int(last) if last is not None else None,
        )


@dataclass
class FleetState:
    """Column form of the sites' states, as :meth:`Fleet.simulate` uses and updates it."""

    battery: BatteryArrays
    counters_kwh: np.ndarray  # (S, len(COUNTERS))


class Fleet:
    """A set of sites simulated together.

    Parameters
    ----------
    sites : sequence of SiteSpec
        Site ids must be unique.
    weather_factory : callable, optional
        Builds the weather source from the sites (default :class:`OfflineWeather`;
        live mode may pass :class:`~wattline.simulator.openmeteo.OpenMeteoWeather`).
    """

    def __init__(self, sites: Sequence[SiteSpec], weather_factory: Callable[[Sequence[SiteSpec]], Any] | None = None):
        self.sites = tuple(sites)
        self.ids = [s.id for s in self.sites]
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("site ids must be unique")
        self.weather = (weather_factory or OfflineWeather)(self.sites)
        self.pv = PVModel(self.sites)
        self.load = LoadModel(self.sites)
        self.battery = BatteryBank([s.battery for s in self.sites])
        self.inverter = InverterModel(self.sites)
        self.timezones = [s.timezone for s in self.sites]
        self._jitter_keys = noise.stream_keys([s.seed for s in self.sites], _JITTER_STREAM)

    def __len__(self) -> int:
        return len(self.sites)

    def initial_states(self) -> list[SiteState]:
        return [SiteState(battery=b) for b in self.battery.initial_states()]

    def pack(self, states: Sequence[SiteState]) -> FleetState:
        """Column form of per-site states (in the fleet's site order)."""
        battery = BatteryArrays.from_states(
            self.battery,
            [st.battery if (st.battery is not None and spec.battery is not None) else
             (BatteryState.initial(spec.battery) if spec.battery is not None else None)
             for st, spec in zip(states, self.sites)],
        )
        counters = np.array([[st.counters_kwh.get(k, 0.0) for k in COUNTERS] for st in states], dtype=np.float64)
        return FleetState(battery=battery, counters_kwh=counters.reshape(len(states), len(COUNTERS)))

    def unpack(self, state: FleetState, last_ts: int | None = None) -> list[SiteState]:
        batteries = state.battery.to_states(self.battery)
        return [
            SiteState(
                battery=batteries[i],
                counters_kwh={k: float(state.counters_kwh[i, j]) for j, k in enumerate(COUNTERS)},
                last_ts=last_ts,
            )
            for i in range(len(self.sites))
        ]

    def simulate(self, ts_end: np.ndarray, dt_s: np.ndarray, state: FleetState,
                 metrics: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Advance every site through the intervals ``(ts_end - dt_s, ts_end]``.

        Parameters
        ----------
        ts_end : ndarray (K,)
            End of each interval, increasing, epoch seconds.
        dt_s : ndarray (K,)
            Length of each interval (the intervals must be contiguous). [s]
        state : FleetState
            State at the start of the first interval; updated in place.
        metrics : iterable of str, optional
            Keys of :data:`METRICS` to return (default: all).

        Returns
        -------
        dict of ndarray (S, K)
        """
        ts_end = np.asarray(ts_end, dtype=np.int64)
        dt = np.asarray(dt_s, dtype=np.float64)
        t_mid = ts_end - dt / 2.0
        first_hour, n_hours = hour_span(t_mid)
        hourly = KnotInterpolator(first_hour, HOUR_S, t_mid)
        w = self.weather.at(t_mid, hourly)
        pv = self.pv.output(t_mid, w)
        offsets = clock.hourly_offsets_s(self.timezones, first_hour, n_hours)
        scheduled = hourly(self.load.scheduled_kw(first_hour, n_hours, offsets))
        u1, u2, u3, u4, u5 = noise.uniforms(self._jitter_keys, ts_end, 5)
        load = self.load.power_kw(scheduled, w.temp_air_c, (u1 + u2 - 1.0) * _SQRT6)

        bat = self.battery.run(state.battery, pv.ac_power_kw - load, w.temp_air_c, dt, ts_end)
        grid = load - pv.ac_power_kw + bat.charge_kw - bat.discharge_kw
        # a battery exactly covering the gap leaves float residue (~1e-16 kW), which
        # would make the grid counters creep: below a microwatt it is zero
        grid = np.where(np.abs(grid) < 1e-9, 0.0, grid)
        imp = np.maximum(grid, 0.0)
        exp = np.maximum(-grid, 0.0)
        inv = self.inverter.metrics(pv, w.temp_air_c, exp, u3, u4, u5)

        out = {
            "solar_power_kw": pv.ac_power_kw,
            "pv_dc_power_kw": pv.dc_power_kw,
            "load_power_kw": load,
            "grid_import_power_kw": imp,
            "grid_export_power_kw": exp,
            "battery_charge_power_kw": bat.charge_kw,
            "battery_discharge_power_kw": bat.discharge_kw,
            "battery_loss_power_kw": bat.loss_kw,
            "battery_soc_pct": bat.soc_pct,
            "battery_voltage_v": bat.voltage_v,
            "battery_current_a": bat.current_a,
            "battery_temperature_c": bat.temperature_c,
            "battery_health_pct": bat.health_pct,
            "battery_cycles": bat.cycles,
            "pv_dc_voltage_v": inv.dc_voltage_v,
            "pv_dc_current_a": inv.dc_current_a,
            "inverter_ac_voltage_v": inv.ac_voltage_v,
            "grid_frequency_hz": inv.frequency_hz,
            "inverter_temperature_c": inv.temperature_c,
            "inverter_efficiency_pct": inv.efficiency_pct,
            "ambient_temperature_c": w.temp_air_c,
            "cell_temperature_c": pv.cell_temperature_c,
            "cloud_cover_pct": w.cloud_fraction * 100.0,
            "wind_speed_ms": w.wind_speed_ms,
            "ghi_w_m2": pv.ghi_w_m2,
            "poa_w_m2": pv.poa_w_m2,
        }
        dt_h = dt / 3600.0
        n_sites, n_steps = load.shape
        acc = np.empty((n_sites, n_steps + 1))
        for j, (counter, power) in enumerate(COUNTERS.items()):
            # one sequential running sum, so chunking never changes a counter's rounding
            acc[:, 0] = state.counters_kwh[:, j]
            np.multiply(out[power], dt_h, out=acc[:, 1:])
            np.cumsum(acc, axis=1, out=acc)
            out[counter] = acc[:, 1:].copy()
            state.counters_kwh[:, j] = acc[:, -1]
        if metrics is not None:
            wanted = list(metrics)
            unknown = [m for m in wanted if m not in METRICS]
            if unknown:
                raise KeyError(f"unknown metrics: {unknown}")
            out = {m: out[m] for m in wanted}
        return out

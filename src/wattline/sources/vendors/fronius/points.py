"""The points a Fronius site reports, by push and by the local Solar API.

Keys follow seed 003's ``point_info`` (``solar_w``, ``battery_soc``, ...); values are
stored in the canonical unit of their metric type (power kW, energy kWh, SoC %), so a
``*_w`` point holds kW (the key names the quantity, not the unit).

Signs (Wattline's, :mod:`wattline.domain.energy_flow`): ``battery_w`` + = discharging,
- = charging (the push contract's ``batteryW`` is + charging: flipped on the way in);
``grid_w`` + = import, - = export; ``load_w`` >= 0.
"""

from __future__ import annotations

from wattline.domain.metrics import MetricType

from ..models import VendorPointSpec

_P, _C, _E, _S = MetricType.POWER, MetricType.COUNTER, MetricType.INTERVAL_ENERGY, MetricType.SOC

# reported by the site-side pusher (fronius-push/CONTRACT.md)
PUSH_POINTS = [
    VendorPointSpec("solar_w", _P, "solarW", "W"),
    VendorPointSpec("solar_local_w", _P, "solarLocalW", "W"),
    VendorPointSpec("solar_remote_w", _P, "solarRemoteW", "W"),
    VendorPointSpec("load_w", _P, "loadW", "W"),
    VendorPointSpec("battery_w", _P, "batteryW", "W"),
    VendorPointSpec("grid_w", _P, "gridW", "W"),
    VendorPointSpec("battery_soc", _S, "batterySOC", "%"),
    VendorPointSpec("solar_interval_kwh", _E, "solarWhInterval", "Wh"),
    VendorPointSpec("load_interval_kwh", _E, "loadWhInterval", "Wh"),
    VendorPointSpec("battery_charge_interval_kwh", _E, "batteryInWhInterval", "Wh"),
    VendorPointSpec("battery_discharge_interval_kwh", _E, "batteryOutWhInterval", "Wh"),
    VendorPointSpec("grid_import_interval_kwh", _E, "gridInWhInterval", "Wh"),
    VendorPointSpec("grid_export_interval_kwh", _E, "gridOutWhInterval", "Wh"),
]

# read from the local Solar API (vendor-fixtures/fronius/); the power points above are
# shared: the same quantity whichever way it arrives
LOCAL_POINTS = [
    VendorPointSpec("solar_kwh", _C, "Site.E_Total", "Wh"),
    VendorPointSpec("solar_today_kwh", _C, "Site.E_Day", "Wh", daily_reset=True),
    VendorPointSpec("grid_import_kwh", _C, "EnergyReal_WAC_Plus_Absolute", "Wh"),
    VendorPointSpec("grid_export_kwh", _C, "EnergyReal_WAC_Minus_Absolute", "Wh"),
]

POINTS = PUSH_POINTS + LOCAL_POINTS
BY_KEY = {p.key: p for p in POINTS}

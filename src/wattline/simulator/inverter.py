"""Electrical metrics a PV inverter reports besides power.

* DC voltage: string maximum-power-point voltage, falling 0.35 %/degC of cell
  temperature and logarithmically with irradiance; 0 when the inverter sleeps.
* AC voltage: nominal grid voltage with +-0.6 % noise and a rise with export
  (up to +2 % at full rated export), as on a real feeder.
* Frequency: nominal 50/60 Hz with ~0.02 Hz noise.
* Inverter temperature: ambient plus heating with AC loading.
* Efficiency: AC over DC, 0 when the inverter sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from wattline.simulator.sites import SiteKind, SiteSpec
from wattline.simulator.solar import PVOutput

# string MPP voltage at STC by kind: residential strings are short (low-voltage
# systems), commercial ~600 V, large plants run 1,000-1,500 V systems
_STRING_VMP_V = {
    SiteKind.RESIDENTIAL: 360.0,
    SiteKind.SMALL_COMMERCIAL: 600.0,
    SiteKind.INDUSTRIAL: 850.0,
    SiteKind.UTILITY: 1100.0,
}
_VMP_TEMP_COEFF_PER_C = -0.0035


@dataclass
class InverterMetrics:
    dc_voltage_v: np.ndarray
    dc_current_a: np.ndarray
    ac_voltage_v: np.ndarray
    frequency_hz: np.ndarray
    temperature_c: np.ndarray
    efficiency_pct: np.ndarray


class InverterModel:
    """PV inverters of a set of sites.

    Parameters
    ----------
    sites : sequence of SiteSpec
    """

    def __init__(self, sites: Sequence[SiteSpec]):
        col = lambda xs: np.array(xs, dtype=np.float64)[:, None]  # noqa: E731
        self.vmp_stc_v = col([_STRING_VMP_V[s.kind] for s in sites])
        self.grid_voltage_v = col([s.grid_voltage_v for s in sites])
        self.grid_frequency_hz = col([s.grid_frequency_hz for s in sites])
        self.rating_kw = np.maximum(col([s.inverter_ac_kw for s in sites]), 1e-9)

    def metrics(self, pv: PVOutput, temp_air_c: np.ndarray, export_kw: np.ndarray,
                u1: np.ndarray, u2: np.ndarray, u3: np.ndarray) -> InverterMetrics:
        """Inverter metrics (S, K) from PV output, ambient, export and uniforms in (0, 1)."""
        # the PVWatts curve gives 0 AC below ~0.6 % load: the inverter is asleep then
        awake = pv.ac_power_kw > 0.0
        g = np.maximum(pv.poa_w_m2, 1.0)
        vmp = self.vmp_stc_v * (1.0 + _VMP_TEMP_COEFF_PER_C * (pv.cell_temperature_c - 25.0)) * (1.0 + 0.05 * np.log(g / 1000.0))
        dc_voltage = np.where(awake, np.maximum(vmp, 0.0), 0.0)
        dc_current = np.where(awake, pv.dc_power_kw * 1000.0 / np.maximum(dc_voltage, 1.0), 0.0)
        loading = pv.ac_power_kw / self.rating_kw
        ac_voltage = self.grid_voltage_v * (1.0 + 0.006 * (2.0 * u1 - 1.0) + 0.02 * np.minimum(export_kw / self.rating_kw, 1.0))
        frequency = self.grid_frequency_hz + 0.035 * (u2 - 0.5) * 2.0
        temperature = temp_air_c + np.where(awake, 4.0 + 22.0 * loading, 1.0) + 0.4 * (2.0 * u3 - 1.0)
        efficiency = np.where(awake, 100.0 * pv.ac_power_kw / np.maximum(pv.dc_power_kw, 1e-12), 0.0)
        return InverterMetrics(dc_voltage, dc_current, ac_voltage, frequency, temperature, efficiency)

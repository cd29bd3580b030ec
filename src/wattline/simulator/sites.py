"""Site descriptions: where a site is, what it has installed, how it consumes.

A :class:`SiteSpec` is plain data (frozen, serialisable with :meth:`SiteSpec.to_dict`).
Everything random about a site (its weather, load noise) derives from ``seed``, so a
spec fully determines its simulated history.
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from wattline.domain.timeutil import zone


class SiteKind(str, enum.Enum):
    RESIDENTIAL = "residential"
    SMALL_COMMERCIAL = "small_commercial"
    INDUSTRIAL = "industrial"
    UTILITY = "utility"


@dataclass(frozen=True)
class BatterySpec:
    """A stationary battery behind the site's meter.

    Parameters
    ----------
    capacity_kwh : float
        Nameplate usable energy when new. [kWh]
    max_charge_kw, max_discharge_kw : float
        AC power limits of the battery inverter. [kW]
    soc_min_pct, soc_max_pct : float
        State-of-charge window the BMS keeps the cells in. [%]
    round_trip_efficiency : float
        AC-to-AC efficiency of a full charge/discharge cycle, split evenly (sqrt)
        between charging and discharging. [0-1]
    cells_series : int
        Cells in series; sets the pack voltage (LFP, ~3.2 V a cell).
    """

    capacity_kwh: float
    max_charge_kw: float
    max_discharge_kw: float
    soc_min_pct: float = 10.0
    soc_max_pct: float = 95.0
    round_trip_efficiency: float = 0.90
    cells_series: int = 16

    def __post_init__(self) -> None:
        if not self.capacity_kwh > 0:
            raise ValueError("battery capacity_kwh must be > 0")
        if self.max_charge_kw < 0 or self.max_discharge_kw < 0:
            raise ValueError("battery power limits must be >= 0")
        if not 0 <= self.soc_min_pct < self.soc_max_pct <= 100:
            raise ValueError("need 0 <= soc_min_pct < soc_max_pct <= 100")
        if not 0 < self.round_trip_efficiency <= 1:
            raise ValueError("round_trip_efficiency must be in (0, 1]")
        if self.cells_series < 1:
            raise ValueError("cells_series must be >= 1")


@dataclass(frozen=True)
class LoadSpec:
    """Consumption of the site.

    Parameters
    ----------
    base_kw : float
        Always-on consumption (night, weekend floor). [kW]
    peak_kw : float
        Consumption at the busiest hour of a working day, before cooling. [kW]
    cooling_kw_per_c : float
        Extra air-conditioning load per degree above ``cooling_threshold_c``. [kW/degC]
    cooling_threshold_c : float
        Ambient temperature above which air-conditioning runs. [degC]
    noise_pct : float
        Standard deviation of reading-to-reading load noise. [%]
    """

    base_kw: float
    peak_kw: float
    cooling_kw_per_c: float = 0.0
    cooling_threshold_c: float = 25.0
    noise_pct: float = 5.0

    def __post_init__(self) -> None:
        if self.base_kw < 0 or self.peak_kw < self.base_kw:
            raise ValueError("need 0 <= base_kw <= peak_kw")
        if self.cooling_kw_per_c < 0 or self.noise_pct < 0:
            raise ValueError("cooling_kw_per_c and noise_pct must be >= 0")


@dataclass(frozen=True)
class ClimateSpec:
    """Long-run statistics the offline weather model is centred on.

    Parameters
    ----------
    cloud_mean : float
        Annual mean cloud fraction. [0-1]
    cloud_seasonal_amplitude : float
        How much cloudier the local winter is than the mean (negative: wet summer,
        as in the monsoon tropics). [0-1]
    temp_mean_c : float
        Annual mean air temperature. [degC]
    temp_seasonal_amplitude_c : float
        Half the difference between the warmest and coldest month. [degC]
    temp_daily_amplitude_c : float
        Half the clear-day difference between afternoon high and dawn low. [degC]
    wind_mean_ms : float
        Mean wind speed at module height. [m/s]
    """

    cloud_mean: float
    cloud_seasonal_amplitude: float
    temp_mean_c: float
    temp_seasonal_amplitude_c: float
    temp_daily_amplitude_c: float
    wind_mean_ms: float = 3.0

    @classmethod
    def for_latitude(cls, latitude: float) -> "ClimateSpec":
        """A plausible climate from latitude alone (tropics, subtropics, mid, high)."""
        a = abs(latitude)
        if a < 15:
            return cls(0.58, -0.12, 27.0, 1.5, 4.5, 2.5)
        if a < 35:
            return cls(0.32, 0.10, 22.0 - (a - 15) * 0.3, 7.0, 6.0, 3.0)
        if a < 55:
            return cls(0.55, 0.12, 14.0 - (a - 35) * 0.5, 8.0 + (a - 35) * 0.2, 4.5, 3.5)
        return cls(0.68, 0.08, 4.0 - (a - 55) * 0.5, 11.0, 3.0, 4.0)


@dataclass(frozen=True)
class SiteSpec:
    """One simulated site: a PV array, an optional battery and a load behind one meter.

    Parameters
    ----------
    id, name : str
        Stable identifier and display name.
    kind : SiteKind
        residential, small_commercial, industrial or utility.
    latitude, longitude : float
        Position, degrees north / east.
    timezone : str
        IANA zone; sets the local clock the load follows. Checked when the site is
        simulated (not here), so one bad registry row fails alone in live mode.
    pv_capacity_kwp : float
        DC nameplate of the array. [kWp]
    tilt_deg, azimuth_deg : float
        Module orientation (pvlib convention: azimuth 180 = south). [deg]
    battery : BatterySpec or None
        None for PV-only sites (most utility plants).
    load : LoadSpec
    seed : int
        Root of every random draw for this site.
    altitude_m : float
        Height above sea level. [m]
    dc_ac_ratio : float
        Array DC nameplate over inverter AC rating; >1 clips at noon.
    grid_voltage_v, grid_frequency_hz : float
        Nominal grid connection (230 V / 50 Hz single phase, 400 V three phase,
        240 V / 60 Hz split phase...).
    climate : ClimateSpec or None
        None: derived from latitude.
    """

    id: str
    name: str
    kind: SiteKind
    latitude: float
    longitude: float
    timezone: str
    pv_capacity_kwp: float
    tilt_deg: float
    azimuth_deg: float
    battery: BatterySpec | None
    load: LoadSpec
    seed: int
    altitude_m: float = 0.0
    dc_ac_ratio: float = 1.2
    grid_voltage_v: float = 230.0
    grid_frequency_hz: float = 50.0
    climate: ClimateSpec | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", SiteKind(self.kind))
        if not (math.isfinite(self.latitude) and -90 <= self.latitude <= 90):
            raise ValueError(f"site {self.id}: latitude must be in [-90, 90]")
        if not (math.isfinite(self.longitude) and -180 <= self.longitude <= 180):
            raise ValueError(f"site {self.id}: longitude must be in [-180, 180]")
        if not (math.isfinite(self.pv_capacity_kwp) and self.pv_capacity_kwp >= 0):
            raise ValueError(f"site {self.id}: pv_capacity_kwp must be >= 0")
        if not 0 <= self.tilt_deg <= 90:
            raise ValueError(f"site {self.id}: tilt_deg must be in [0, 90]")
        if self.dc_ac_ratio <= 0:
            raise ValueError(f"site {self.id}: dc_ac_ratio must be > 0")
        if self.climate is None:
            object.__setattr__(self, "climate", ClimateSpec.for_latitude(self.latitude))

    @property
    def inverter_ac_kw(self) -> float:
        """AC rating of the PV inverter. [kW]"""
        return self.pv_capacity_kwp / self.dc_ac_ratio

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"] = self.kind.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SiteSpec":
        d = dict(d)
        battery = d.pop("battery", None)
        load = d.pop("load")
        climate = d.pop("climate", None)
        return cls(
            battery=BatterySpec(**battery) if battery else None,
            load=LoadSpec(**load),
            climate=ClimateSpec(**climate) if climate else None,
            **d,
        )

    def validate_timezone(self) -> None:
        """Raise :class:`wattline.domain.timeutil.TimezoneError` for an unknown zone."""
        zone(self.timezone)


def equator_facing_azimuth(latitude: float) -> float:
    """Azimuth of a module facing the equator: 180 (south) north of it, 0 south of it."""
    return 180.0 if latitude >= 0 else 0.0


# Per-kind sizing: (pv kWp range, base kW, peak kW, cooling kW/degC, battery kWh range,
# battery C-rate, cells in series, chance of a battery). Loads scale with the PV size
# so that sites neither export everything nor import everything.
_KIND_SIZES = {
    SiteKind.RESIDENTIAL: dict(pv=(4.0, 12.0), base=0.03, peak=0.22, cool=0.025, batt=(0.8, 1.6), c_rate=0.5, cells=16, p_batt=0.85),
    SiteKind.SMALL_COMMERCIAL: dict(pv=(30.0, 150.0), base=0.10, peak=0.60, cool=0.02, batt=(0.8, 2.0), c_rate=0.5, cells=128, p_batt=0.7),
    SiteKind.INDUSTRIAL: dict(pv=(250.0, 1500.0), base=0.35, peak=0.90, cool=0.01, batt=(0.5, 1.5), c_rate=0.5, cells=240, p_batt=0.6),
    SiteKind.UTILITY: dict(pv=(2000.0, 20000.0), base=0.002, peak=0.006, cool=0.0, batt=(1.0, 2.0), c_rate=0.5, cells=240, p_batt=0.3),
}

# Places across latitudes and both hemispheres: (name, lat, lon, tz, volts, hz, climate or None)
_PLACES: list[tuple[str, float, float, str, float, float, ClimateSpec | None]] = [
    ("Sydney", -33.87, 151.21, "Australia/Sydney", 230, 50, ClimateSpec(0.45, -0.05, 18.5, 4.5, 4.0, 3.5)),
    ("Cape Town", -33.92, 18.42, "Africa/Johannesburg", 230, 50, ClimateSpec(0.38, 0.18, 17.0, 4.0, 5.0, 4.5)),
    ("Oslo", 59.91, 10.75, "Europe/Oslo", 230, 50, ClimateSpec(0.62, 0.08, 6.5, 9.5, 4.0, 3.0)),
    ("Singapore", 1.35, 103.82, "Asia/Singapore", 230, 50, ClimateSpec(0.55, 0.05, 27.5, 0.8, 3.5, 2.5)),
    ("Phoenix", 33.45, -112.07, "America/Phoenix", 240, 60, ClimateSpec(0.12, 0.06, 24.5, 10.5, 7.5, 2.8)),
    ("Berlin", 52.52, 13.40, "Europe/Berlin", 230, 50, None),
    ("Madrid", 40.42, -3.70, "Europe/Madrid", 230, 50, ClimateSpec(0.27, 0.15, 15.0, 9.5, 6.5, 2.5)),
    ("Sao Paulo", -23.55, -46.63, "America/Sao_Paulo", 220, 60, ClimateSpec(0.58, -0.12, 20.0, 3.0, 4.5, 2.5)),
    ("Buenos Aires", -34.60, -58.38, "America/Argentina/Buenos_Aires", 220, 50, None),
    ("Nairobi", -1.29, 36.82, "Africa/Nairobi", 240, 50, ClimateSpec(0.55, -0.05, 18.5, 1.5, 6.0, 3.0)),
    ("Delhi", 28.61, 77.21, "Asia/Kolkata", 230, 50, ClimateSpec(0.30, -0.20, 25.0, 9.0, 6.5, 2.5)),
    ("Tokyo", 35.68, 139.69, "Asia/Tokyo", 200, 50, None),
    ("Perth", -31.95, 115.86, "Australia/Perth", 230, 50, ClimateSpec(0.30, 0.20, 19.0, 5.5, 6.0, 4.0)),
    ("Auckland", -36.85, 174.76, "Pacific/Auckland", 230, 50, ClimateSpec(0.52, 0.05, 15.5, 4.0, 3.5, 4.5)),
    ("Lima", -12.05, -77.04, "America/Lima", 220, 60, ClimateSpec(0.62, 0.20, 19.5, 3.0, 3.0, 3.0)),
    ("Toronto", 43.65, -79.38, "America/Toronto", 240, 60, None),
    ("Dubai", 25.20, 55.27, "Asia/Dubai", 230, 50, ClimateSpec(0.12, 0.06, 28.0, 7.5, 5.5, 3.5)),
    ("London", 51.51, -0.13, "Europe/London", 230, 50, ClimateSpec(0.66, 0.08, 11.5, 6.5, 3.5, 4.0)),
    ("Santiago", -33.45, -70.67, "America/Santiago", 220, 50, ClimateSpec(0.30, 0.20, 14.5, 6.0, 8.0, 2.5)),
    ("Honolulu", 21.31, -157.86, "Pacific/Honolulu", 240, 60, ClimateSpec(0.45, 0.05, 25.5, 2.0, 3.5, 4.5)),
    ("Reykjavik", 64.15, -21.94, "Atlantic/Reykjavik", 230, 50, ClimateSpec(0.75, 0.05, 5.0, 5.5, 2.5, 6.0)),
    ("Johannesburg", -26.20, 28.05, "Africa/Johannesburg", 230, 50, ClimateSpec(0.35, -0.15, 16.0, 5.0, 7.5, 3.0)),
    ("Mexico City", 19.43, -99.13, "America/Mexico_City", 127, 60, ClimateSpec(0.45, -0.15, 17.0, 2.5, 7.5, 2.5)),
    ("Helsinki", 60.17, 24.94, "Europe/Helsinki", 230, 50, None),
    ("Kathmandu", 27.72, 85.32, "Asia/Kathmandu", 230, 50, ClimateSpec(0.50, -0.25, 18.5, 6.5, 6.5, 2.0)),
]


def default_sites(n: int, seed: int = 0) -> list[SiteSpec]:
    """A varied, deterministic fleet of ``n`` sites.

    Sites cycle through cities on both hemispheres (Sydney, Cape Town, Oslo,
    Singapore, Phoenix, ...), jittered a little after the first pass, with a mix
    of kinds (about 60 % residential, 25 % small commercial, 10 % industrial,
    5 % utility). The same ``(n, seed)`` always gives the same fleet, and the
    first ``k`` sites of a fleet of ``n`` are the fleet of ``k``.

    Parameters
    ----------
    n : int
        Number of sites.
    seed : int
        Fleet seed; site seeds derive from it.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    sites = []
    for i in range(n):
        # one generator per site index keeps prefixes of fleets stable
        rng = np.random.default_rng([int(seed), i])
        name, lat, lon, tz, volts, hz, climate = _PLACES[i % len(_PLACES)]
        if i >= len(_PLACES):
            lat = float(np.clip(lat + rng.uniform(-0.6, 0.6), -89.0, 89.0))
            lon = float((lon + rng.uniform(-0.6, 0.6) + 180.0) % 360.0 - 180.0)
        kind = _pick_kind(i, rng)
        sizes = _KIND_SIZES[kind]
        kwp = float(round(rng.uniform(*sizes["pv"]), 1))
        base_kw = kwp * sizes["base"] * rng.uniform(0.8, 1.25)
        peak_kw = max(base_kw, kwp * sizes["peak"] * rng.uniform(0.8, 1.25))
        battery = None
        if rng.uniform() < sizes["p_batt"]:
            cap = float(round(kwp * rng.uniform(*sizes["batt"]), 1))
            p = round(cap * sizes["c_rate"], 1)
            battery = BatterySpec(
                capacity_kwh=cap,
                max_charge_kw=p,
                max_discharge_kw=p,
                soc_min_pct=float(rng.choice([5.0, 10.0, 15.0, 20.0])),
                soc_max_pct=float(rng.choice([90.0, 95.0, 100.0])),
                round_trip_efficiency=float(round(rng.uniform(0.86, 0.94), 3)),
                cells_series=sizes["cells"],
            )
        three_phase = kind is not SiteKind.RESIDENTIAL
        sites.append(
            SiteSpec(
                id=f"site-{i + 1:03d}",
                name=f"{name} {kind.value.replace('_', ' ')} {i + 1}",
                kind=kind,
                latitude=lat,
                longitude=lon,
                timezone=tz,
                pv_capacity_kwp=kwp,
                # roofs are flatter than the latitude-optimal tilt; utility racks near it
                tilt_deg=float(round(min(abs(lat) * (0.9 if kind is SiteKind.UTILITY else 0.7), 35.0) + rng.uniform(0, 5), 1)),
                azimuth_deg=float(round(equator_facing_azimuth(lat) + rng.uniform(-30, 30), 1)) % 360.0,
                battery=battery,
                load=LoadSpec(
                    base_kw=round(base_kw, 3),
                    peak_kw=round(peak_kw, 3),
                    cooling_kw_per_c=round(kwp * sizes["cool"], 3),
                ),
                seed=int(rng.integers(0, 2**31 - 1)),
                altitude_m=float(round(rng.uniform(0, 300), 0)),
                dc_ac_ratio=float(round(rng.uniform(1.1, 1.3), 2)),
                # residential: single/split phase nominal; others: three-phase line-to-line
                grid_voltage_v=float(volts) if not three_phase else (400.0 if hz == 50 else 480.0),
                grid_frequency_hz=float(hz),
                climate=climate,
            )
        )
    return sites


def _pick_kind(i: int, rng: np.random.Generator) -> SiteKind:
    # the first sites cover every kind, so tiny fleets are varied too
    if i < 4:
        return [SiteKind.RESIDENTIAL, SiteKind.SMALL_COMMERCIAL, SiteKind.INDUSTRIAL, SiteKind.UTILITY][i]
    u = rng.uniform()
    if u < 0.60:
        return SiteKind.RESIDENTIAL
    if u < 0.85:
        return SiteKind.SMALL_COMMERCIAL
    if u < 0.95:
        return SiteKind.INDUSTRIAL
    return SiteKind.UTILITY


def with_battery(site: SiteSpec, battery: BatterySpec | None) -> SiteSpec:
    """Copy of ``site`` with another battery (or none)."""
    return replace(site, battery=battery)


__all__ = [
    "BatterySpec",
    "ClimateSpec",
    "LoadSpec",
    "SiteKind",
    "SiteSpec",
    "default_sites",
    "equator_facing_azimuth",
    "with_battery",
]

"""Offline stochastic weather: cloud cover, air temperature and wind per site.

Every value is a pure function of (site seed, timestamp). Random innovations come
from :mod:`wattline.simulator.noise` keyed by absolute hour / day numbers, and
persistence is built by finite moving-average filters over those innovations
(truncated AR(1) kernels), so any window can be generated on its own and overlapping
windows agree exactly. Structure of the cloud field:

* seasonal mean by hemisphere and :class:`~wattline.simulator.sites.ClimateSpec`,
* a synoptic (weather-system) latent from daily innovations, e-folding ~2 days,
* an hourly latent (convective / frontal detail), e-folding ~6 hours,
* sub-hourly cloud-edge flicker on 5-minute knots (only matters in broken cloud).

Cloud fraction is the logistic of the summed latents, so clear spells, overcast
spells and broken days all occur with realistic run lengths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from wattline.simulator import noise
from wattline.simulator.sites import SiteSpec

HOUR_S = 3600
DAY_S = 86400
FLICKER_S = 300
TROPICAL_YEAR_DAYS = 365.2422

# noise streams (part of the determinism contract: changing one changes history)
_CLOUD_HOURLY, _CLOUD_DAILY, _TEMP_HOURLY, _TEMP_DAILY, _WIND_HOURLY, _WIND_DAILY, _FLICKER = range(1, 8)

# truncated AR(1) kernels, normalised to unit variance
_HOURLY_PHI, _HOURLY_TAPS = 0.85, 36  # 0.85**36 ~ 0.3 %
_DAILY_PHI, _DAILY_TAPS = 0.55, 8  # 0.55**8 ~ 0.8 %


def _kernel(phi: float, taps: int) -> np.ndarray:
    w = phi ** np.arange(taps, dtype=np.float64)
    return w / np.sqrt(np.sum(w * w))


_HOURLY_W = _kernel(_HOURLY_PHI, _HOURLY_TAPS)
_DAILY_W = _kernel(_DAILY_PHI, _DAILY_TAPS)

# how strongly each latent moves cloud cover (in logit units)
_SIGMA_SYNOPTIC = 1.5
_SIGMA_HOURLY = 0.9


@dataclass
class Weather:
    """Weather over a (sites, steps) grid.

    Attributes
    ----------
    cloud_fraction : ndarray (S, K)
        Total cloud cover. [0-1]
    temp_air_c : ndarray (S, K)
        Air temperature at 2 m. [degC]
    wind_speed_ms : ndarray (S, K)
        Wind speed at module height. [m/s]
    clearness_jitter : ndarray (S, K)
        Cloud-edge variability in [-1, 1]; scaled by the irradiance model.
    """

    cloud_fraction: np.ndarray
    temp_air_c: np.ndarray
    wind_speed_ms: np.ndarray
    clearness_jitter: np.ndarray


def _ar_filtered(keys: np.ndarray, first: int, count: int, weights: np.ndarray) -> np.ndarray:
    """Latent values for indices ``first .. first+count-1``: sum_j w_j * eps[i - j]."""
    taps = len(weights)
    eps = noise.normal(keys, np.arange(first - taps + 1, first + count, dtype=np.int64))
    out = weights[0] * eps[:, taps - 1 : taps - 1 + count]
    # fixed summation order per element, so the value never depends on the window
    for j in range(1, taps):
        out = out + weights[j] * eps[:, taps - 1 - j : taps - 1 - j + count]
    return out


class KnotInterpolator:
    """Linear interpolation from knots at ``(first + i) * period_s`` to times ``t`` (K,).

    The positions are computed once and reused for every field on the same knots.
    """

    def __init__(self, first: int, period_s: int, t: np.ndarray):
        pos = t / period_s
        base = np.floor(pos)
        self.f = pos - base
        self.g = 1.0 - self.f
        self.idx = base.astype(np.int64) - first
        self.idx1 = self.idx + 1

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return values[:, self.idx] * self.g + values[:, self.idx1] * self.f


def _interp_knots(values: np.ndarray, first: int, period_s: int, t: np.ndarray) -> np.ndarray:
    return KnotInterpolator(first, period_s, t)(values)


def hour_span(t: np.ndarray) -> tuple[int, int]:
    """(first_hour, count) of the hourly knots needed to interpolate at times ``t``."""
    first = int(np.floor(t.min() / HOUR_S))
    return first, int(np.floor(t.max() / HOUR_S)) - first + 2


def _daily_to_hours(daily: np.ndarray, first_day: int, hours_t: np.ndarray) -> np.ndarray:
    # daily latents sit at day centres (noon UTC)
    return _interp_knots(daily, first_day, DAY_S, hours_t - DAY_S / 2)


class OfflineWeather:
    """Deterministic weather for a set of sites, without network access.

    Parameters
    ----------
    sites : sequence of SiteSpec
    """

    def __init__(self, sites: Sequence[SiteSpec]):
        seeds = [s.seed for s in sites]
        self._keys = {stream: noise.stream_keys(seeds, stream) for stream in range(1, 8)}
        climates = [s.climate for s in sites]
        col = lambda xs: np.array(xs, dtype=np.float64)[:, None]  # noqa: E731
        self.latitude = col([s.latitude for s in sites])
        self.longitude = col([s.longitude for s in sites])
        hemi = np.where(self.latitude >= 0, 1.0, -1.0)
        self._hemisphere = hemi
        self.cloud_mean = col([c.cloud_mean for c in climates])
        self.cloud_amp = col([c.cloud_seasonal_amplitude for c in climates])
        self.temp_mean_c = col([c.temp_mean_c for c in climates])
        self.temp_season_c = col([c.temp_seasonal_amplitude_c for c in climates])
        self.temp_daily_c = col([c.temp_daily_amplitude_c for c in climates])
        self.wind_mean_ms = col([c.wind_mean_ms for c in climates])

    def hourly(self, first_hour: int, count: int) -> dict[str, np.ndarray]:
        """Knot values (S, count) at UTC hours ``first_hour .. first_hour+count-1``."""
        hours_t = (np.arange(first_hour, first_hour + count, dtype=np.int64) * HOUR_S).astype(np.float64)
        first_day = int((first_hour * HOUR_S - DAY_S // 2) // DAY_S)
        n_days = int((hours_t[-1] - DAY_S / 2) // DAY_S) - first_day + 2
        k = self._keys

        # winter_factor: +1 in mid local winter, -1 in mid local summer
        doy = np.mod(hours_t / DAY_S, TROPICAL_YEAR_DAYS)
        winter = self._hemisphere * np.cos(2 * np.pi * (doy - 18.0) / TROPICAL_YEAR_DAYS)

        syn = _daily_to_hours(_ar_filtered(k[_CLOUD_DAILY], first_day, n_days, _DAILY_W), first_day, hours_t)
        hr = _ar_filtered(k[_CLOUD_HOURLY], first_hour, count, _HOURLY_W)
        mean = np.clip(self.cloud_mean + self.cloud_amp * winter, 0.03, 0.97)
        logit = np.log(mean / (1.0 - mean)) + _SIGMA_SYNOPTIC * syn + _SIGMA_HOURLY * hr
        cloud = 1.0 / (1.0 + np.exp(-logit))

        t_syn = _daily_to_hours(_ar_filtered(k[_TEMP_DAILY], first_day, n_days, _DAILY_W), first_day, hours_t)
        t_hr = _ar_filtered(k[_TEMP_HOURLY], first_hour, count, _HOURLY_W)
        solar_hour = np.mod(hours_t / HOUR_S + self.longitude / 15.0, 24.0)
        # afternoon high at ~15 h solar time; clouds damp the daily swing
        daily = self.temp_daily_c * (1.0 - 0.5 * cloud) * np.cos(2 * np.pi * (solar_hour - 15.0) / 24.0)
        temp = self.temp_mean_c - self.temp_season_c * winter + daily + 2.5 * t_syn + 0.6 * t_hr

        w_syn = _daily_to_hours(_ar_filtered(k[_WIND_DAILY], first_day, n_days, _DAILY_W), first_day, hours_t)
        w_hr = _ar_filtered(k[_WIND_HOURLY], first_hour, count, _HOURLY_W)
        wind = self.wind_mean_ms * np.exp(0.35 * w_syn + 0.25 * w_hr - 0.5 * (0.35**2 + 0.25**2))

        return {"cloud_fraction": cloud, "temp_air_c": temp, "wind_speed_ms": wind}

    def at(self, t: np.ndarray, hourly: KnotInterpolator | None = None) -> Weather:
        """Weather at epoch seconds ``t`` (K,), for every site: arrays (S, K).

        ``hourly``: an interpolator for ``t`` on the knots of :func:`hour_span`, when
        the caller already has one.
        """
        t = np.asarray(t, dtype=np.float64)
        if t.size == 0:
            empty = np.zeros((len(self.latitude), 0))
            return Weather(empty, empty.copy(), empty.copy(), empty.copy())
        first_hour, count = hour_span(t)
        knots = self.hourly(first_hour, count)
        interp = hourly if hourly is not None else KnotInterpolator(first_hour, HOUR_S, t)
        first_slot = int(np.floor(t.min() / FLICKER_S))
        n_slots = int(np.floor(t.max() / FLICKER_S)) - first_slot + 2
        flicker = 2.0 * noise.uniform(self._keys[_FLICKER], np.arange(first_slot, first_slot + n_slots)) - 1.0
        return Weather(
            cloud_fraction=interp(knots["cloud_fraction"]),
            temp_air_c=interp(knots["temp_air_c"]),
            wind_speed_ms=interp(knots["wind_speed_ms"]),
            clearness_jitter=_interp_knots(flicker, first_slot, FLICKER_S, t),
        )

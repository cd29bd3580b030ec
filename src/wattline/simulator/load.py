"""Site consumption by local time of day, weekday/weekend, temperature and site kind.

Shape of a working day per kind (fraction of the way from base to peak load, per
local hour): residential homes peak in the evening (peak 17-21 h, shoulder in the
morning, off-peak at night); shops and offices follow business hours; factories
run two shifts; utility plants only carry auxiliaries (trackers, cooling,
SCADA) that follow the sun. Weekends have their own shapes. On top:

* air-conditioning: ``cooling_kw_per_c`` for every degree above the threshold,
* a day-to-day activity factor (one draw per site and local day, sd 8 %),
* reading-to-reading noise (``noise_pct``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from wattline.simulator import noise
from wattline.simulator.sites import SiteKind, SiteSpec

DAY_S = 86400
_LOAD_DAY_STREAM = 20
_DAY_FACTOR_SD = 0.08

# 24 hourly values (value at hh:00 local), weekday then weekend
PROFILES: dict[SiteKind, tuple[tuple[float, ...], tuple[float, ...]]] = {
    SiteKind.RESIDENTIAL: (
        (0.10, 0.05, 0.03, 0.03, 0.05, 0.15, 0.45, 0.65, 0.50, 0.30, 0.25, 0.25,
         0.30, 0.25, 0.25, 0.30, 0.45, 0.70, 0.95, 1.00, 0.90, 0.70, 0.45, 0.25),
        (0.15, 0.08, 0.05, 0.04, 0.04, 0.06, 0.12, 0.30, 0.55, 0.65, 0.60, 0.55,
         0.60, 0.55, 0.50, 0.50, 0.55, 0.75, 0.95, 1.00, 0.90, 0.75, 0.50, 0.30),
    ),
    SiteKind.SMALL_COMMERCIAL: (
        (0.02, 0.02, 0.02, 0.02, 0.02, 0.04, 0.15, 0.45, 0.80, 0.95, 1.00, 1.00,
         0.95, 1.00, 1.00, 0.95, 0.90, 0.75, 0.45, 0.25, 0.12, 0.06, 0.03, 0.02),
        (0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.04, 0.10, 0.20, 0.30, 0.35, 0.35,
         0.35, 0.30, 0.25, 0.20, 0.15, 0.10, 0.06, 0.04, 0.03, 0.02, 0.02, 0.02),
    ),
    SiteKind.INDUSTRIAL: (
        (0.15, 0.15, 0.15, 0.15, 0.15, 0.30, 0.70, 0.95, 1.00, 1.00, 1.00, 0.95,
         0.90, 0.95, 1.00, 0.95, 0.90, 0.90, 0.90, 0.85, 0.85, 0.70, 0.40, 0.20),
        (0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.25, 0.35, 0.40, 0.40, 0.40, 0.40,
         0.40, 0.40, 0.40, 0.35, 0.30, 0.25, 0.20, 0.15, 0.15, 0.15, 0.15, 0.15),
    ),
    SiteKind.UTILITY: (
        (0.05, 0.05, 0.05, 0.05, 0.05, 0.10, 0.25, 0.45, 0.65, 0.80, 0.90, 1.00,
         1.00, 1.00, 0.90, 0.80, 0.65, 0.45, 0.25, 0.10, 0.05, 0.05, 0.05, 0.05),
    ) * 2,
}


def tou_period(local_hour: np.ndarray, weekend: np.ndarray) -> np.ndarray:
    """Time-of-use period per reading: 0 off-peak, 1 shoulder, 2 peak.

    Peak 17-21 h on working days; shoulder 7-17 h and 21-22 h on working days and
    7-22 h at weekends; off-peak otherwise.
    """
    h = np.asarray(local_hour)
    wk = np.asarray(weekend, dtype=bool)
    shoulder = (h >= 7) & (h < 22)
    peak = (h >= 17) & (h < 21) & ~wk
    return np.where(peak, 2, np.where(shoulder, 1, 0))


class LoadModel:
    """Loads of a set of sites, evaluated together.

    Parameters
    ----------
    sites : sequence of SiteSpec
    """

    def __init__(self, sites: Sequence[SiteSpec]):
        col = lambda xs: np.array(xs, dtype=np.float64)[:, None]  # noqa: E731
        self.base_kw = col([s.load.base_kw for s in sites])
        self.span_kw = col([s.load.peak_kw - s.load.base_kw for s in sites])
        self.cooling_kw_per_c = col([s.load.cooling_kw_per_c for s in sites])
        self.cooling_threshold_c = col([s.load.cooling_threshold_c for s in sites])
        self.noise_sd = col([s.load.noise_pct / 100.0 for s in sites])
        # (S, 48): weekday hours 0..23 then weekend hours 0..23
        tables = [list(PROFILES[s.kind][0]) + list(PROFILES[s.kind][1]) for s in sites]
        self._profile = np.array(tables, dtype=np.float64).reshape(len(sites), 48)
        self._day_keys = noise.stream_keys([s.seed for s in sites], _LOAD_DAY_STREAM)

    def scheduled_kw(self, first_hour: int, count: int, offset_s: np.ndarray) -> np.ndarray:
        """Load without weather and noise (S, count) at UTC hours ``first_hour ..``. [kW]

        Evaluated on hourly knots and interpolated by the caller: for the whole-hour
        zones that is exactly the hourly profile on the local clock; half-hour zones
        get the same profile smoothed over the half hour.

        Parameters
        ----------
        first_hour, count : int
            UTC hours (epoch hours) of the knots.
        offset_s : ndarray (S, count)
            Each site's UTC offset at each knot. [s]
        """
        local = np.arange(first_hour, first_hour + count, dtype=np.int64)[None, :] * 3600 + offset_s
        local_day = local // DAY_S
        hour = (local - local_day * DAY_S) / 3600.0
        # 1970-01-01 was a Thursday: weekday 0 = Monday
        weekend = np.mod(local_day + 3, 7) >= 5
        h0 = np.floor(hour).astype(np.int64)
        f = hour - h0
        # after 23 h the next knot is hour 0 of the next day, which may be a weekend
        weekend_next = np.where(h0 == 23, np.mod(local_day + 4, 7) >= 5, weekend)
        lo = np.take_along_axis(self._profile, h0 + np.where(weekend, 24, 0), axis=1)
        hi = np.take_along_axis(self._profile, np.mod(h0 + 1, 24) + np.where(weekend_next, 24, 0), axis=1)
        shape = lo + (hi - lo) * f
        day_factor = 1.0 + _DAY_FACTOR_SD * noise.normal(self._day_keys, local_day)
        return (self.base_kw + self.span_kw * shape) * day_factor

    def power_kw(self, scheduled_kw: np.ndarray, temp_air_c: np.ndarray, jitter: np.ndarray) -> np.ndarray:
        """Load power (S, K). [kW]

        Parameters
        ----------
        scheduled_kw : ndarray (S, K)
            :meth:`scheduled_kw` interpolated to the readings' times. [kW]
        temp_air_c : ndarray (S, K)
            Ambient temperature. [degC]
        jitter : ndarray (S, K)
            Zero-mean, unit-variance noise for this reading.
        """
        cooling = self.cooling_kw_per_c * np.maximum(temp_air_c - self.cooling_threshold_c, 0.0)
        return np.maximum(scheduled_kw * (1.0 + self.noise_sd * jitter) + cooling, 0.0)

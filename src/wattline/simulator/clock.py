"""Local clock of each site: UTC offsets for vectors of instants."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from wattline.domain.timeutil import zone

HOUR_S = 3600


def utc_offsets_s(timezone: str, first_hour: int, count: int) -> np.ndarray:
    """UTC offset (seconds) of ``timezone`` at UTC hours ``first_hour .. +count-1``.

    Raises :class:`wattline.domain.timeutil.TimezoneError` for an unknown zone.
    """
    zone(timezone)  # a clear error for a bad zone name, before pandas'
    utc = pd.to_datetime(np.arange(first_hour, first_hour + count, dtype=np.int64) * HOUR_S, unit="s", utc=True)
    local = utc.tz_convert(timezone).tz_localize(None)
    return ((local.to_numpy() - utc.tz_localize(None).to_numpy()) / np.timedelta64(1, "s")).astype(np.int64)


def site_offsets_s(timezones: Sequence[str], t: np.ndarray) -> np.ndarray:
    """UTC offsets (S, K) of each site's zone at epoch seconds ``t`` (K,).

    Offsets are sampled at the UTC hour containing each instant: every zone in use
    today changes offset on a UTC hour, except Lord Howe Island (half-hour) whose
    load clock may then be 30 minutes off for half an hour a year.
    """
    t = np.asarray(t, dtype=np.float64)
    if t.size == 0:
        return np.zeros((len(timezones), 0), dtype=np.int64)
    hour = np.floor(t / HOUR_S).astype(np.int64)
    first = int(hour.min())
    count = int(hour.max()) - first + 1
    by_zone = {tz: utc_offsets_s(tz, first, count) for tz in dict.fromkeys(timezones)}
    table = np.stack([by_zone[tz] for tz in timezones])
    return table[:, hour - first]

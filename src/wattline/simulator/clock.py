"""Local clock of each site: UTC offsets for vectors of instants."""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd

from wattline.domain.timeutil import zone

HOUR_S = 3600


_BLOCK_HOURS = 8192  # ~11 months of hourly offsets per cached block


@lru_cache(maxsize=2048)
def _offset_block(timezone: str, block: int) -> np.ndarray:
    zone(timezone)  # a clear error for a bad zone name, before pandas'
    hours = np.arange(block * _BLOCK_HOURS, (block + 1) * _BLOCK_HOURS, dtype=np.int64)
    utc = pd.to_datetime(hours * HOUR_S, unit="s", utc=True)
    local = utc.tz_convert(timezone).tz_localize(None)
    offsets = ((local.to_numpy() - utc.tz_localize(None).to_numpy()) / np.timedelta64(1, "s")).astype(np.int64)
    offsets.flags.writeable = False
    return offsets


def utc_offsets_s(timezone: str, first_hour: int, count: int) -> np.ndarray:
    """UTC offset (seconds) of ``timezone`` at UTC hours ``first_hour .. +count-1``.

    Raises :class:`wattline.domain.timeutil.TimezoneError` for an unknown zone.
    """
    last = first_hour + count - 1
    b0, b1 = first_hour // _BLOCK_HOURS, last // _BLOCK_HOURS
    table = np.concatenate([_offset_block(timezone, b) for b in range(b0, b1 + 1)])
    start = first_hour - b0 * _BLOCK_HOURS
    return table[start : start + count]


def hourly_offsets_s(timezones: Sequence[str], first_hour: int, count: int) -> np.ndarray:
    """UTC offsets (S, count) of each site's zone at UTC hours ``first_hour ..``."""
    if not timezones:
        return np.zeros((0, count), dtype=np.int64)
    by_zone = {tz: utc_offsets_s(tz, first_hour, count) for tz in dict.fromkeys(timezones)}
    return np.stack([by_zone[tz] for tz in timezones]).reshape(len(timezones), count)


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
    return hourly_offsets_s(timezones, first, count)[:, hour - first]

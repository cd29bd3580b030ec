"""The local wall clock's grid of fixed-width buckets (5 minutes, 15 minutes, an hour).

A bucket of width ``w`` starts at every instant whose local wall-clock reading is a
multiple of ``w`` since local midnight (minute % 5 == 0, % 15 == 0, or minute 0), and
ends where the next one starts. In Asia/Kolkata (+05:30) the hour 00:00-01:00 IST is
one bucket, i.e. [18:30, 19:30) UTC of the day before.

Where the UTC offset changes, that rule gives:

* a wall-clock hour that is repeated (Europe/Berlin, last Sunday of October: 02:00
  CEST, then 02:00 CET) is two buckets, each starting on the grid;
* a jump that lands on the grid (Berlin in March: 02:00 -> 03:00) ends the bucket
  before it, so the day has 23 one-hour buckets;
* a jump that lands off the grid (Australia/Lord_Howe's 30-minute DST: 02:00 ->
  02:30 in October, 02:00 -> 01:30 in April) is absorbed by the bucket it falls in:
  the hour of 01:00 lasts 90 minutes on both change days;
* a day whose first instant is off the grid (a change at midnight to an offset of
  another phase: Asia/Kathmandu on 1986-01-01 began at 00:15, Pacific/Rarotonga's
  DST days of 1979-1990 at 00:30) still starts a bucket, so that days stay unions of
  buckets; that bucket runs to the next on-grid instant. Only such a bucket starts
  off the grid.

So buckets never overlap, leave no gap, every coarser grid's edges are edges of every
finer one (an hour starts on a 5-minute edge), and local midnight is an edge of all of
them: 5-minute pieces add up exactly to 15 minutes, hours and days.

Offsets come from the zone itself (``zoneinfo``); their changes are located by
sampling the offset hourly and bisecting to the second, cached per zone and year.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

import numpy as np

from wattline.domain import timeutil

_CHUNK_S = 365 * 86400  # transitions are looked up and cached per chunk of this length
_SAMPLE_S = 3600  # no zone changes its offset twice within an hour


def utc_offset_s(ts: int, tz: str) -> int:
    """UTC offset of zone ``tz`` at an instant.

    Parameters
    ----------
    ts : int
        Instant, UTC epoch seconds.
    tz : str
        IANA zone name.

    Returns
    -------
    int
        Seconds east of UTC (Asia/Kolkata: 19800).
    """
    off = datetime.fromtimestamp(int(ts), timeutil.zone(tz)).utcoffset()
    return int(off.total_seconds())


@lru_cache(maxsize=4096)
def _chunk_transitions(tz: str, chunk: int) -> tuple[tuple[int, int], ...]:
    """(instant, new offset) of each change of offset in (chunk * C, (chunk + 1) * C]."""
    a = chunk * _CHUNK_S
    samples = range(a, a + _CHUNK_S + 1, _SAMPLE_S)
    offsets = [utc_offset_s(t, tz) for t in samples]
    out = []
    for i in range(len(offsets) - 1):
        if offsets[i] == offsets[i + 1]:
            continue
        lo, hi = a + i * _SAMPLE_S, a + (i + 1) * _SAMPLE_S  # offset(lo) == old != offset(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if utc_offset_s(mid, tz) == offsets[i]:
                lo = mid
            else:
                hi = mid
        out.append((hi, offsets[i + 1]))
    return tuple(out)


def offset_segments(tz: str, lo: int, hi: int) -> list[tuple[int, int]]:
    """Constant-offset stretches of zone ``tz`` covering [lo, hi].

    Parameters
    ----------
    tz : str
        IANA zone name.
    lo, hi : int
        First and last instant to cover, UTC epoch seconds.

    Returns
    -------
    list of (int, int)
        (start, offset) pairs: from ``start`` (UTC epoch seconds; the first is ``lo``)
        until the next pair's start, the zone is ``offset`` seconds east of UTC.
    """
    out = [(lo, utc_offset_s(lo, tz))]
    for chunk in range(lo // _CHUNK_S, hi // _CHUNK_S + 1):
        out.extend((t, o) for t, o in _chunk_transitions(tz, chunk) if lo < t <= hi)
    return out


def _starts_a_day(ts: int, tz: str) -> bool:
    return timeutil.local_midnight(timeutil.local_date(ts, tz), tz) == ts


def grid_edges(tz: str, width_s: int, lo: int, hi: int) -> np.ndarray:
    """Edges of the consecutive wall-clock buckets of ``width_s`` covering [lo, hi].

    Parameters
    ----------
    tz : str
        IANA zone name.
    width_s : int
        Bucket width on the wall clock, seconds; a divisor of 86400 (300, 900, 3600).
    lo, hi : int
        First and last instant to cover, UTC epoch seconds.

    Returns
    -------
    numpy.ndarray of int64
        Increasing bucket edges, UTC epoch seconds: the first is the start of the
        bucket holding ``lo``, the last the end of the bucket holding ``hi``; bucket
        i is [edges[i], edges[i + 1]). Every local midnight in the range is an edge.
    """
    # the bucket holding lo starts less than a width plus the largest jump before it
    margin = 2 * width_s + 4 * 3600
    a, b = lo - margin, hi + margin
    segments = offset_segments(tz, a, b)
    parts = []
    for k, ((start, off), (end, _)) in enumerate(zip(segments, segments[1:] + [(b + 1, 0)])):
        first = -(-(start + off) // width_s) * width_s - off  # first on-grid instant >= start
        if k and first > start and _starts_a_day(start, tz):
            parts.append(np.array([start], np.int64))
        parts.append(np.arange(first, end, width_s, dtype=np.int64))
    edges = np.concatenate(parts)
    i = int(np.searchsorted(edges, lo, side="right")) - 1
    j = int(np.searchsorted(edges, hi, side="right"))
    if i < 0 or j >= len(edges):
        raise ValueError(f"no {width_s} s wall-clock bucket edge near [{lo}, {hi}] in {tz}")
    return edges[i:j + 1]

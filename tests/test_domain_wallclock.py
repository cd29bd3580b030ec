"""The local wall clock's bucket grid (domain/wallclock.py) and the bucket arithmetic
built on it (domain/buckets.py), without a database."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from hypothesis import example, given, settings, strategies as st

from wattline.domain import buckets as B, timeutil, wallclock

ZONES = ["UTC", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Adelaide", "Australia/Lord_Howe",
         "Europe/Berlin", "America/St_Johns", "Pacific/Chatham", "America/Santiago"]
# 1979-1990: Rarotonga's and Lord Howe's midnight changes, Kathmandu's 00:15 day (1986)
instants = st.integers(283_996_800, 1_900_000_000)


def _on_grid(u: int, tz: str, width_s: int) -> bool:
    wall = datetime.fromtimestamp(u, timeutil.zone(tz))
    return (wall.hour * 3600 + wall.minute * 60 + wall.second) % width_s == 0


@settings(max_examples=60, deadline=None)
@given(t=instants, tz=st.sampled_from(ZONES + ["Pacific/Rarotonga"]), width=st.sampled_from([300, 900, 3600]))
@example(t=timeutil.parse_instant("1986-01-01T00:20:00+05:45"), tz="Asia/Kathmandu", width=3600)
@example(t=timeutil.parse_instant("1985-12-31T23:50:00+05:30"), tz="Asia/Kathmandu", width=3600)
@example(t=timeutil.parse_instant("2024-10-06T02:40:00+11:00"), tz="Australia/Lord_Howe", width=3600)
@example(t=timeutil.parse_instant("2024-04-07T01:40:00+10:30"), tz="Australia/Lord_Howe", width=3600)
@example(t=timeutil.parse_instant("2024-10-27T02:30:00+01:00"), tz="Europe/Berlin", width=3600)
@example(t=timeutil.parse_instant("2024-10-27T02:30:00+02:00"), tz="Europe/Berlin", width=900)
def test_the_bucket_of_an_instant_starts_at_the_last_on_grid_instant(t, tz, width):
    """Brute force, second by second: the start is the latest u <= t whose wall clock is
    on the grid (or a local midnight), and nothing in between is."""
    edges = wallclock.grid_edges(tz, width, t, t)
    start, end = int(edges[0]), int(edges[1])
    assert start <= t < end
    day_start = timeutil.local_midnight(timeutil.local_date(start, tz), tz)
    assert _on_grid(start, tz, width) or start == day_start
    assert _on_grid(end, tz, width) or end == timeutil.local_midnight(timeutil.local_date(end, tz), tz)
    step = 60 if all(o % 60 == 0 for _, o in wallclock.offset_segments(tz, start, end)) else 1
    for u in range(start + step, end, step):
        assert not _on_grid(u, tz, width), datetime.fromtimestamp(u, timeutil.zone(tz)).isoformat()


@settings(max_examples=60, deadline=None)
@given(t=instants, days=st.integers(1, 40), tz=st.sampled_from(ZONES + ["Pacific/Rarotonga", "Africa/Monrovia"]))
def test_coarser_edges_are_edges_of_every_finer_grid_and_days_unions_of_hours(t, days, tz):
    lo, hi = t, t + days * 86400
    e5, e15, e60 = ({int(x) for x in wallclock.grid_edges(tz, w, lo, hi) if lo <= x <= hi} for w in (300, 900, 3600))
    assert e60 <= e15 <= e5
    first = timeutil.local_date(lo, tz) + timedelta(days=1)
    for k in range(days - 1):
        a, b = timeutil.day_bounds(first + timedelta(days=k), tz)
        assert a in e60 and (b in e60 or b > hi)


def test_utc_offsets_and_their_changes():
    assert wallclock.utc_offset_s(1_700_000_000, "Asia/Kathmandu") == 5 * 3600 + 45 * 60
    spring = timeutil.parse_instant("2024-03-31T01:00:00Z")  # Berlin: 02:00 CET -> 03:00 CEST
    segments = wallclock.offset_segments("Europe/Berlin", spring - 10, spring + 10)
    assert segments == [(spring - 10, 3600), (spring, 7200)]


@st.composite
def entries(draw):
    n = draw(st.integers(1, 30))
    sid = np.array(draw(st.lists(st.sampled_from([1, 2, 3]), min_size=n, max_size=n)), np.int64)
    start = np.array(draw(st.lists(st.integers(1_711_700_000, 1_712_000_000), min_size=n, max_size=n)), np.int64)
    length = np.array(draw(st.lists(st.integers(1, 30_000), min_size=n, max_size=n)), np.int64)
    delta = np.array(draw(st.lists(st.integers(0, 10**8), min_size=n, max_size=n)), np.int64)
    return {"series_id": sid, "start_ts": start, "end_ts": start + length, "delta": delta,
            "flags": np.zeros(n, np.int64)}


NO_READINGS = {"series_id": np.zeros(0, np.int64), "ts": np.zeros(0, np.int64), "value": np.zeros(0)}


@settings(max_examples=60, deadline=None)
@given(led=entries(), zones=st.permutations(["Asia/Kolkata", "Australia/Lord_Howe", "Europe/Berlin"]))
def test_fine_pieces_of_several_zones_compose_exactly_into_their_days(led, zones):
    """Around March/April 2024's changes: 5-minute buckets on each series' clock, composed
    into 15 minutes, hours and local days, equal the days cut directly at midnights."""
    tz = dict(zip([1, 2, 3], zones))
    base = B.base_buckets(led, NO_READINGS, tz)
    days = B.day_buckets(led, NO_READINGS, tz)
    level = base
    for period in ("15min", "hour", "day"):
        ps, pe = B.bucket_parents(level["start"], tz, level["series_id"], period)
        assert (ps <= level["start"]).all() and (level["end"] <= pe).all()  # children lie inside
        level = B.compose(level, ps, pe)
    for k in ("series_id", "start", "end", "energy", "flags", "split_start", "split_end"):
        np.testing.assert_array_equal(level[k], days[k], err_msg=k)
    assert int(base["energy"].sum()) == int(led["delta"].sum())
    # each series split alone gives the same pieces as all series together
    for s in (1, 2, 3):
        one = B.base_buckets({k: v[led["series_id"] == s] for k, v in led.items()}, NO_READINGS, {s: tz[s]})
        mine = base["series_id"] == s
        np.testing.assert_array_equal(one["start"], base["start"][mine])
        np.testing.assert_array_equal(one["energy"], base["energy"][mine])

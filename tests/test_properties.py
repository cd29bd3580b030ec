"""Ledger and aggregate invariants (hypothesis), on SQLite and PostgreSQL.

Every example registers fresh series, so one database pair serves all examples.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import aggregate_rows, batch, energy_by_period, ledger_rows, ledger_total, new_series
from wattline.domain.buckets import PERIODS

# Europe/Berlin's spring-forward night, so many examples cross a 23-hour day
T0 = int(datetime(2024, 3, 30, 20, tzinfo=timezone.utc).timestamp())
TZ = "Europe/Berlin"

PROPS = settings(max_examples=30, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@st.composite
def counter_series(draw):
    """Readings of a cumulative counter: steps of 1..120 min, increments, dips and resets."""
    n = draw(st.integers(2, 60))
    steps = draw(st.lists(st.integers(1, 120), min_size=n, max_size=n))
    ts = T0 + np.cumsum(np.array(steps) * 60)
    values, v = [], draw(st.floats(0, 5000))
    for _ in range(n):
        kind = draw(st.sampled_from(["up", "up", "up", "flat", "dip", "reset"]))
        if kind == "up":
            v += draw(st.floats(0.001, 50))
        elif kind == "dip":
            v = v * draw(st.floats(0.95, 0.999))
        elif kind == "reset":
            v = draw(st.floats(0, 2))
        values.append(round(v, 3))
    return ts.tolist(), values


@st.composite
def arrival(draw, n):
    """A permutation of n readings cut into chunks."""
    order = draw(st.permutations(list(range(n))))
    cuts = sorted(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=5, unique=True)))
    bounds = [0] + [c for c in cuts if c < n] + [n]
    return [order[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def _ingest_in(pipeline, sid, ts, values, chunks):
    for chunk in chunks:
        pipeline.ingest(batch(sid, [ts[i] for i in chunk], [values[i] for i in chunk]), refresh_summaries=False)


@PROPS
@given(data=st.data(), series=counter_series())
def test_any_order_and_chunking_gives_the_same_ledger_and_aggregates(dbs, pipeline, data, series):
    ts, values = series
    in_order, shuffled = new_series(dbs, tz=TZ), new_series(dbs, tz=TZ)
    _ingest_in(pipeline, in_order, ts, values, [list(range(len(ts)))])
    _ingest_in(pipeline, shuffled, ts, values, data.draw(arrival(len(ts))))
    assert ledger_rows(dbs, shuffled) == ledger_rows(dbs, in_order)
    assert aggregate_rows(dbs, shuffled) == aggregate_rows(dbs, in_order)


@PROPS
@given(series=counter_series())
def test_ingesting_twice_changes_nothing(dbs, pipeline, series):
    ts, values = series
    sid = new_series(dbs, tz=TZ)
    _ingest_in(pipeline, sid, ts, values, [list(range(len(ts)))])
    ledger, aggs = ledger_rows(dbs, sid), aggregate_rows(dbs, sid)
    result = pipeline.ingest(batch(sid, ts, values))
    assert result.repeats == len(ts) and result.late_readings == 0  # all already stored: no late path
    assert ledger_rows(dbs, sid) == ledger and aggregate_rows(dbs, sid) == aggs


@PROPS
@given(series=counter_series())
def test_every_period_sums_to_the_ledger_total_exactly(dbs, pipeline, series):
    ts, values = series
    sid = new_series(dbs, tz=TZ)
    _ingest_in(pipeline, sid, ts, values, [list(range(len(ts)))])
    total = ledger_total(dbs, sid)
    sums = energy_by_period(dbs, sid)
    assert {p: sums.get(p, 0) for p in PERIODS} == {p: total for p in PERIODS}


@PROPS
@given(series=counter_series())
def test_a_reset_never_yields_a_negative_delta_or_a_spike(dbs, pipeline, series):
    ts, values = series
    sid = new_series(dbs, tz=TZ)
    _ingest_in(pipeline, sid, ts, values, [list(range(len(ts)))])
    deltas = [r[2] for r in ledger_rows(dbs, sid)]
    assert all(d >= 0 for d in deltas)
    # no entry can exceed the largest rise between two readings or a post-reset value
    biggest = max([round(b * 1e6) - round(a * 1e6) for a, b in zip(values, values[1:])] +
                  [round(v * 1e6) for v in values])
    assert max(deltas) <= biggest


def _day_total(dbs, sid, day_start_local: str) -> tuple[int, int]:
    from wattline.domain import timeutil
    from wattline.store.queries import energy_buckets

    start = timeutil.parse_instant(day_start_local)
    days = energy_buckets(dbs.telemetry, sid, "day", start, start + 3600, TZ)
    return days[0].end - days[0].start, days[0].energy_milli_wh


def test_dst_days_total_correctly(dbs, pipeline):
    """A meter rising exactly 1 kWh per hour: the spring day has 23 kWh, the autumn day 25."""
    for day, hours in (("2024-03-31T00:00:00+01:00", 23), ("2024-10-27T00:00:00+02:00", 25)):
        sid = new_series(dbs, tz=TZ)
        from wattline.domain import timeutil
        start = timeutil.parse_instant(day) - 86400
        ts = np.arange(start, start + 3 * 86400, 900)
        pipeline.ingest(batch(sid, ts, (ts - start) / 3600.0))
        length, energy = _day_total(dbs, sid, day)
        assert length == hours * 3600
        assert energy == hours * 1_000_000


@PROPS
@given(series=counter_series())
def test_each_stored_day_equals_its_hours_computed_on_read(dbs, pipeline, series):
    from wattline.store.fine_buckets import fixed_on_read

    ts, values = series
    sid = new_series(dbs, tz=TZ)
    _ingest_in(pipeline, sid, ts, values, [list(range(len(ts)))])
    with dbs.telemetry.connect() as c:
        days = c.exec_driver_sql(
            f"SELECT bucket_start, bucket_end, energy_milli_wh FROM aggregates WHERE series_id = {sid} "
            "AND period = 'day'").all()
        for start, end, energy in days:
            hours = fixed_on_read(c, sid, "hour", start, end, TZ)
            assert int(hours["energy"].sum()) == int(energy or 0)


# Zones whose offset is not a whole hour, with and without DST (Lord Howe's DST is 30
# minutes), and a whole-hour DST zone; each with days around its 2024 offset changes.
WALL_CLOCK_ZONES = {
    "Asia/Kolkata": ["2024-03-10"],
    "Asia/Kathmandu": ["2024-06-01"],
    "Australia/Adelaide": ["2024-04-07", "2024-10-06"],
    "Australia/Lord_Howe": ["2024-04-07", "2024-10-06"],
    "Europe/Berlin": ["2024-03-31", "2024-10-27"],
}
GRID_MINUTES = {"5min": 5, "15min": 15, "hour": 60}


@st.composite
def local_days_with_readings(draw):
    """A zone, a range [a, b) of 1-3 whole local days near an offset change, and counter
    readings at a, at b and at random instants in and around the range."""
    from datetime import date, timedelta

    from wattline.domain import timeutil

    tz = draw(st.sampled_from(sorted(WALL_CLOCK_ZONES)))
    anchor = date.fromisoformat(draw(st.sampled_from(WALL_CLOCK_ZONES[tz])))
    first = anchor + timedelta(days=draw(st.integers(-1, 0)))
    a = timeutil.local_midnight(first, tz)
    b = timeutil.local_midnight(first + timedelta(days=draw(st.integers(1, 3))), tz)
    inside = draw(st.lists(st.integers(a - 6 * 3600, b + 6 * 3600), min_size=1, max_size=60, unique=True))
    ts = sorted(set(inside) | {a, b})
    values, v = [], draw(st.floats(0, 1000))
    for _ in ts:
        kind = draw(st.sampled_from(["up", "up", "up", "up", "flat", "reset"]))
        v = draw(st.floats(0, 2)) if kind == "reset" else v + (draw(st.floats(0.001, 40)) if kind == "up" else 0)
        values.append(round(v, 3))
    return tz, a, b, ts, values


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=local_days_with_readings())
def test_local_wall_clock_buckets_add_up_to_days_and_the_ledger_in_every_zone(dbs, pipeline, case):
    """5-minute = 15-minute = hour = day buckets = the ledger over whole local days,
    exactly; fine buckets tile each day without gap or overlap, on the wall clock's grid."""
    from wattline.domain import timeutil
    from wattline.store.queries import energy_buckets

    tz, a, b, ts, values = case
    sid = new_series(dbs, tz=tz)
    pipeline.ingest(batch(sid, ts, values), refresh_summaries=False)
    with dbs.telemetry.connect() as c:  # readings at a and b: no entry crosses the range's edges
        ledger = int(c.exec_driver_sql(
            f"SELECT COALESCE(SUM(delta_milli_wh), 0) FROM ledger WHERE series_id = {sid} "
            f"AND start_ts >= {a} AND end_ts <= {b}").scalar())
    days = energy_buckets(dbs.telemetry, sid, "day", a, b, tz)
    assert (days[0].start, days[-1].end) == (a, b)
    assert sum(d.energy_milli_wh for d in days) == ledger
    zone = timeutil.zone(tz)
    for period, minutes in GRID_MINUTES.items():
        fine = energy_buckets(dbs.telemetry, sid, period, a, b, tz)
        assert sum(f.energy_milli_wh for f in fine) == ledger, period
        assert fine[0].start == a and fine[-1].end == b
        assert all(x.end == y.start for x, y in zip(fine, fine[1:])), f"{period}: gap or overlap"
        for f in fine:
            wall = datetime.fromtimestamp(f.start, zone)
            assert wall.minute % minutes == 0 and wall.second == 0, f"{period} bucket at {wall.isoformat()}"
        for d in days:  # each day is exactly the union of its fine buckets
            inside = [f for f in fine if d.start <= f.start < d.end]
            assert inside[0].start == d.start and inside[-1].end == d.end
            assert sum(f.energy_milli_wh for f in inside) == d.energy_milli_wh, f"{period} in {d.start}"


def test_an_hour_in_kolkata_runs_from_the_full_hour_ist():
    """Asia/Kolkata's hour 00:00-01:00 IST is one bucket, [18:30, 19:30) UTC."""
    from wattline.domain import buckets as B, timeutil

    day = timeutil.parse_instant("2024-11-05T00:00:00+05:30")
    hours = B.bucket_range("hour", day, day + 86400, "Asia/Kolkata")
    assert len(hours) == 24 and hours[0] == (day, day + 3600)
    assert timeutil.iso(hours[0][0]) == "2024-11-04T18:30:00Z"


def test_lord_howe_change_days_have_one_90_minute_hour():
    """A 30-minute DST jump lands off the hour grid: the hour it falls in lasts 90 minutes."""
    from wattline.domain import buckets as B, timeutil

    for day, count in (("2024-10-06", 23), ("2024-04-07", 24)):
        a, b = timeutil.day_bounds(datetime.fromisoformat(day).date(), "Australia/Lord_Howe")
        hours = B.bucket_range("hour", a, b, "Australia/Lord_Howe")
        lengths = sorted(e - s for s, e in hours)
        assert len(hours) == count and lengths[-1] == 5400 and set(lengths[:-1]) == {3600}
        assert hours[0][0] == a and hours[-1][1] == b

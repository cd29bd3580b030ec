"""The vectorised append path gives exactly what the per-series functions give.

``derive_appended`` (many series in one pass) against ``derive`` on each series;
the upsert that merges appended buckets into stored ones against buckets of
everything at once (on both databases); calendar parents from bucket edges against
converting each instant.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from wattline.domain import buckets as B
from wattline.domain.ledger import SeriesRules, derive, derive_appended
from wattline.domain.quality import Method
from wattline.pipeline import aggregate

RULES = [
    SeriesRules(Method.COUNTER),
    SeriesRules(Method.COUNTER, reset_ratio=0.5, expected_interval_s=300),
    SeriesRules(Method.COUNTER, wrap_milli_wh=100_000_000),
    SeriesRules(Method.POWER_INTEGRATION),
    SeriesRules(Method.INTERVAL_ENERGY, expected_interval_s=900),
    None,  # a metric without energy (soc, voltage...)
]


@st.composite
def series(draw):
    n = draw(st.integers(1, 12))
    steps = draw(st.lists(st.sampled_from([300, 900, 900, 2700, 7200]), min_size=n, max_size=n))
    ts = 1_700_000_000 + np.cumsum(steps)
    values = np.array(draw(st.lists(st.floats(0, 90, allow_nan=False), min_size=n, max_size=n)))
    if draw(st.booleans()):  # mostly increasing: a counter, sometimes with a drop
        values = np.cumsum(values) * draw(st.sampled_from([1.0, 0.001]))
        if n > 2 and draw(st.booleans()):
            values[draw(st.integers(1, n - 1)):] *= draw(st.sampled_from([0.1, 0.95]))
    rules = draw(st.sampled_from(RULES))
    has_prev = draw(st.booleans())
    prev_ts = int(ts[0]) - draw(st.sampled_from([900, 5000])) if has_prev else None
    prev_value = float(values[0]) * draw(st.sampled_from([0.5, 1.0])) if has_prev else None
    prev_ref = None
    if has_prev and rules is not None and rules.method is Method.COUNTER and draw(st.booleans()):
        prev_ref = int(round(prev_value * 1e6)) + draw(st.integers(0, 10_000))
    return ts.astype(np.int64), values, rules, prev_ts, prev_value, prev_ref


@settings(max_examples=300, deadline=None)
@given(st.lists(series(), min_size=1, max_size=6))
def test_derive_appended_equals_derive_per_series(segments):
    ts = np.concatenate([s[0] for s in segments])
    values = np.concatenate([s[1] for s in segments])
    seg_starts = np.cumsum([0] + [len(s[0]) for s in segments[:-1]])
    got = derive_appended(ts, values, seg_starts, [s[2] for s in segments], [s[3] for s in segments],
                          [s[4] for s in segments], [s[5] for s in segments])
    for (s_ts, s_v, rules, p_ts, p_v, p_ref), a in zip(segments, seg_starts):
        sl = slice(a, a + len(s_ts))
        if rules is None:
            assert not got.has[sl].any()
            continue
        want = derive(s_ts, s_v, rules, p_ts, p_v, p_ref)
        at = np.searchsorted(s_ts, want.end_ts)
        has = np.zeros(len(s_ts), bool)
        has[at] = True
        assert (got.has[sl] == has).all()
        h = got.has[sl]
        assert (got.start_ts[sl][h] == want.start_ts).all()
        assert (got.delta[sl][h] == want.delta).all()
        assert (got.flags[sl][h] == want.flags).all()
        assert (got.confidence[sl][h] == want.confidence).all()
        assert (got.ref[sl][h] == want.ref).all()
        assert (got.method[sl][h] == int(rules.method)).all()


def append(conn, ledger, readings, tz):
    """What the pipeline's append path does with a batch's new entries and readings."""
    aggregate.write_appended(conn, aggregate.appended_rows(ledger, readings, tz))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(st.sampled_from([300, 900, 3600, 20_000, 90_000]), min_size=2, max_size=40),
    cut=st.integers(1, 39),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]),
)
def test_upsert_merge_of_stored_and_appended_equals_whole(dbs, steps, cut, zone):
    """The append path's upsert (``aggregate.merge_expressions``) on each database."""
    ts = 1_711_800_000 + np.cumsum(steps).astype(np.int64)  # around the March 2024 DST changes
    n = len(ts)
    cut = min(cut, n - 1)
    sid = np.full(n, 7, np.int64)
    values = np.arange(n, dtype=np.float64) * 1.5
    ledger = {"series_id": sid[1:], "start_ts": ts[:-1], "end_ts": ts[1:],
              "delta": np.arange(1, n, dtype=np.int64) * 1001, "flags": np.arange(1, n, dtype=np.int64) % 3}
    readings = {"series_id": sid, "ts": ts, "value": values}
    tz = {7: zone}

    def pick(cols, mask):
        return {k: v[mask] for k, v in cols.items()}

    def stored():
        with dbs.telemetry.connect() as conn:
            return {p: aggregate.read_buckets(conn, p, [(7, -2**62, 2**62)]) for p in aggregate.STORED_PERIODS}

    with dbs.telemetry.begin() as conn:
        conn.exec_driver_sql("DELETE FROM aggregates")
        append(conn, ledger, readings, tz)
    whole = stored()
    with dbs.telemetry.begin() as conn:
        conn.exec_driver_sql("DELETE FROM aggregates")
        # stored: readings up to ts[cut - 1] and the entries ending there; appended: the rest
        append(conn, pick(ledger, ledger["end_ts"] <= ts[cut - 1]), pick(readings, ts <= ts[cut - 1]), tz)
        append(conn, pick(ledger, ledger["end_ts"] > ts[cut - 1]), pick(readings, ts > ts[cut - 1]), tz)
    merged = stored()
    for period in aggregate.STORED_PERIODS:
        for k in B.COLUMNS:
            if k == "vsum":  # summed in another order
                np.testing.assert_allclose(merged[period][k], whole[period][k], rtol=1e-12)
            else:
                np.testing.assert_array_equal(merged[period][k], whole[period][k], err_msg=f"{period}.{k}")


@settings(max_examples=100, deadline=None)
@given(
    ts=st.lists(st.integers(1_600_000_000, 1_800_000_000), min_size=1, max_size=50),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/Santiago", "Asia/Kathmandu", "Pacific/Chatham"]),
    period=st.sampled_from(["day", "month", "year"]),
)
def test_calendar_parents_by_edges_equal_conversion_of_each_instant(ts, zone, period):
    t = np.array(ts, np.int64)
    ps, pe = B.calendar_parents(t, {1: zone}, np.ones(len(t), np.int64), period)
    want_s, want_e = B._parents_by_conversion(t, zone, period)
    np.testing.assert_array_equal(ps, want_s)
    np.testing.assert_array_equal(pe, want_e)
    assert (ps <= t).all() and (t < pe).all()


def test_rows_for_the_driver_put_none_where_told_across_chunks(monkeypatch):
    from wattline.pipeline import ingest

    monkeypatch.setattr(ingest, "ROW_CHUNK", 3)  # several chunks, some all-null, some mixed
    a = np.arange(7, dtype=np.int64)
    b = np.arange(7, dtype=np.float64) / 2
    null = np.array([False, True, False, True, True, True, False])
    rows = list(ingest._rows((a, b, a), (None, null, np.ones(7, bool))))
    assert rows == [(i, None if null[i] else i / 2, None) for i in range(7)]
    assert all(type(r[0]) is int for r in rows)  # plain Python values for the driver

"""Ledger rules on concrete series: resets, dips, wraps, gaps, power, quarantine."""

from __future__ import annotations

import math


from helpers import batch, energy_by_period, ledger_rows, ledger_total, new_series
from wattline.domain.metrics import MetricType
from wattline.domain.quality import Flag

T0 = 1_700_000_100 // 900 * 900
Q = 900


def deltas(dbs, sid):
    return [(r[2], r[4]) for r in ledger_rows(dbs, sid)]


def test_counter_deltas_are_exact_milli_wh(dbs, pipeline):
    sid = new_series(dbs)
    pipeline.ingest(batch(sid, [T0, T0 + Q, T0 + 2 * Q], [100.0, 100.25, 100.75]))
    assert deltas(dbs, sid) == [(250_000, 0), (500_000, 0)]


def test_reset_counts_from_zero_and_marks_it(dbs, pipeline):
    sid = new_series(dbs)
    pipeline.ingest(batch(sid, [T0 + i * Q for i in range(4)], [500.0, 501.0, 0.5, 1.5]))
    d = deltas(dbs, sid)
    assert [x[0] for x in d] == [1_000_000, 500_000, 1_000_000]
    assert d[1][1] & Flag.RESET and not d[0][1] & Flag.RESET
    assert ledger_total(dbs, sid) == 2_500_000


def test_small_dip_is_noise_and_its_recovery_adds_nothing(dbs, pipeline):
    sid = new_series(dbs)
    pipeline.ingest(batch(sid, [T0 + i * Q for i in range(4)], [1000.0, 995.0, 1000.0, 1002.0]))
    d = deltas(dbs, sid)
    assert [x[0] for x in d] == [0, 0, 2_000_000]
    assert d[0][1] & Flag.DIP


def test_reset_threshold_is_per_point(dbs, pipeline):
    sid = new_series(dbs, reset_ratio=0.99)
    pipeline.ingest(batch(sid, [T0, T0 + Q, T0 + 2 * Q], [1000.0, 980.0, 981.0]))
    d = deltas(dbs, sid)
    assert d[0] == (980_000_000, int(Flag.RESET))  # below 99 %: a reset at this point
    assert d[1][0] == 1_000_000


def test_fixed_width_counter_wraps(dbs, pipeline):
    sid = new_series(dbs, wrap_kwh=1000.0)
    pipeline.ingest(batch(sid, [T0, T0 + Q, T0 + 2 * Q], [999.0, 999.5, 0.5]))
    d = deltas(dbs, sid)
    assert d[1] == (1_000_000, int(Flag.WRAP))


def test_gap_longer_than_expected_interval_is_flagged(dbs, pipeline):
    sid = new_series(dbs, expected_interval_s=900)
    pipeline.ingest(batch(sid, [T0, T0 + Q, T0 + 5 * Q], [1.0, 2.0, 3.0]))
    d = deltas(dbs, sid)
    assert not d[0][1] & Flag.GAP and d[1][1] & Flag.GAP


def test_power_is_integrated_by_trapezoid_with_low_confidence(dbs, pipeline):
    sid = new_series(dbs, metric=MetricType.POWER)
    pipeline.ingest(batch(sid, [T0, T0 + Q, T0 + 2 * Q], [2.0, 4.0, 4.0]))
    rows = ledger_rows(dbs, sid)
    assert [r[2] for r in rows] == [750_000, 1_000_000]  # (2+4)/2 kW * 0.25 h, 4 kW * 0.25 h
    assert all(r[4] & Flag.LOW_CONFIDENCE for r in rows)


def test_implausible_and_non_finite_values_are_quarantined_not_used(dbs, pipeline):
    sid = new_series(dbs, plausible_max=10_000.0)
    result = pipeline.ingest(batch(sid, [T0, T0 + Q, T0 + 2 * Q, T0 + 3 * Q], [1.0, math.nan, 1e9, 2.0]))
    assert sorted(q.ts for q in result.quarantined) == [T0 + Q, T0 + 2 * Q]
    assert "plausible" in next(q.reason for q in result.quarantined if q.ts == T0 + 2 * Q)
    assert [r[2] for r in ledger_rows(dbs, sid)] == [1_000_000]
    with dbs.telemetry.connect() as c:
        kept = c.exec_driver_sql(f"SELECT ts, value_text FROM quarantined_readings WHERE series_id={sid} ORDER BY ts").fetchall()
    assert kept == [(T0 + Q, "nan"), (T0 + 2 * Q, "1000000000.0")]


def test_late_reading_rederives_only_neighbouring_entries(dbs, pipeline):
    sid = new_series(dbs)
    ts = [T0 + i * Q for i in range(10)]
    pipeline.ingest(batch(sid, ts[:5] + ts[6:], [float(i) for i in range(10) if i != 5]))
    before = ledger_rows(dbs, sid)
    r = pipeline.ingest(batch(sid, [ts[5]], [5.0]))
    after = ledger_rows(dbs, sid)
    assert r.late_readings == 1 and r.ledger_entries == 2  # the new entry and the one after it
    assert [x[2] for x in after] == [1_000_000] * 9
    assert before[:4] == after[:4] and before[-3:] == after[-3:]


def test_split_delta_is_proportional_and_marked_estimated(dbs, pipeline):
    sid = new_series(dbs, expected_interval_s=3600)
    # one delta of 3 kWh from 00:30 to 01:30 UTC: half in each hour
    base = T0 // 86400 * 86400
    pipeline.ingest(batch(sid, [base + 1800, base + 5400], [10.0, 13.0]))
    from wattline.store.queries import energy_buckets
    hours = energy_buckets(dbs.telemetry, sid, "hour", base, base + 7200, "UTC")
    assert [h.energy_milli_wh for h in hours] == [1_500_000, 1_500_000]
    assert all("estimated" in h.quality for h in hours)
    assert energy_by_period(dbs, sid)["day"] == 3_000_000

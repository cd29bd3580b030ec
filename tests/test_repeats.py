"""Readings identical to stored ones (a sync window overlapping what is stored, a page
fetched twice, a redelivered message) change nothing and skip the late-data path."""

from __future__ import annotations

import numpy as np

from helpers import aggregate_rows, batch, ledger_rows, new_series
from wattline.domain.metrics import MetricType
from wattline.domain.readings import ReadingBatch

T0 = 1_700_000_100 // 900 * 900


def _counter(n: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return T0 + np.arange(n) * 900, 1000 + np.cumsum(rng.uniform(0, 2, n))


def _readings(dbs, sid: int):
    with dbs.telemetry.connect() as c:
        return c.exec_driver_sql(
            f"SELECT ts, value, raw_event_id FROM readings WHERE series_id = {int(sid)} ORDER BY ts").fetchall()


def _row_versions(dbs) -> dict[str, list]:
    """PostgreSQL: the transaction that last wrote each row (xmin), so a rewrite of a row
    with identical values still shows; SQLite: nothing to compare."""
    if dbs.telemetry.dialect.name != "postgresql":
        return {}
    with dbs.telemetry.connect() as c:
        return {t: c.exec_driver_sql(f"SELECT xmin::text FROM {t} ORDER BY 1").scalars().all()
                for t in ("readings", "aggregates", "series_info")}


def test_a_repeated_batch_writes_nothing(dbs, pipeline):
    counter, power = new_series(dbs, tz="Europe/Berlin"), new_series(dbs, MetricType.POWER, tz="Europe/Berlin")
    ts, values = _counter(300)
    both = ReadingBatch(np.r_[np.full(300, counter), np.full(300, power)], np.r_[ts, ts],
                        np.r_[values, values % 7], np.full(600, -1), [], "test")
    first = pipeline.ingest(both)
    assert first.readings_written == 600 and first.repeats == 0
    before = {s: (_readings(dbs, s), ledger_rows(dbs, s), aggregate_rows(dbs, s)) for s in (counter, power)}
    versions = _row_versions(dbs)
    seen = []
    pipeline.after_commit.append(lambda b, r: seen.append(r))

    again = pipeline.ingest(both)

    assert again.repeats == 600
    assert (again.readings_written, again.late_readings, again.ledger_entries, again.buckets_written) == (0, 0, 0, 0)
    assert again.touched_assets == set() and again.newest == {}
    assert seen == [again]  # the hooks ran after commit, with nothing new to publish
    assert {s: (_readings(dbs, s), ledger_rows(dbs, s), aggregate_rows(dbs, s)) for s in (counter, power)} == before
    assert _row_versions(dbs) == versions  # not even rewritten with the same values


def test_an_overlapping_sync_window_appends_only_what_is_new(dbs, pipeline):
    """The next day's sync re-sends the readings it overlaps: they are dropped, the
    rest takes the append path, and the result is that of one batch of everything."""
    sid, ref = new_series(dbs, tz="Europe/Berlin"), new_series(dbs, tz="Europe/Berlin")
    ts, values = _counter(200)
    pipeline.ingest(batch(ref, ts, values))
    pipeline.ingest(batch(sid, ts[:120], values[:120]))

    r = pipeline.ingest(batch(sid, ts[80:], values[80:]))

    assert (r.repeats, r.readings_written, r.late_readings) == (40, 80, 0)
    assert r.newest == {sid: (int(ts[-1]), float(values[-1]))}
    assert ledger_rows(dbs, sid) == ledger_rows(dbs, ref)
    assert aggregate_rows(dbs, sid) == aggregate_rows(dbs, ref)


def test_a_changed_value_at_a_stored_instant_is_still_late_data(dbs, pipeline):
    sid, ref = new_series(dbs, tz="Europe/Berlin"), new_series(dbs, tz="Europe/Berlin")
    ts, values = _counter(200)
    pipeline.ingest(batch(sid, ts, values))
    corrected = values.copy()
    corrected[100] += 0.5  # the vendor corrected one reading
    pipeline.ingest(batch(ref, ts, corrected))

    r = pipeline.ingest(batch(sid, ts, corrected))

    assert (r.repeats, r.readings_written, r.late_readings) == (199, 1, 1)
    assert r.newest == {}  # the series' newest reading did not change
    assert _readings(dbs, sid) == _readings(dbs, ref)
    assert ledger_rows(dbs, sid) == ledger_rows(dbs, ref)
    assert aggregate_rows(dbs, sid) == aggregate_rows(dbs, ref)


def test_repeats_of_one_series_do_not_touch_the_others_of_the_batch(dbs, pipeline):
    old, new = new_series(dbs), new_series(dbs)
    ts, values = _counter(50)
    pipeline.ingest(batch(old, ts, values))
    mixed = ReadingBatch(np.r_[np.full(50, old), np.full(50, new)], np.r_[ts, ts], np.r_[values, values],
                         np.full(100, -1), [], "test")

    r = pipeline.ingest(mixed)

    assert (r.repeats, r.readings_written, r.late_readings) == (50, 50, 0)
    assert set(r.newest) == {new}
    assert ledger_rows(dbs, new) == ledger_rows(dbs, old)

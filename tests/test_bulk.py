"""store/bulk.py: both PostgreSQL paths (one unnest statement for small sets, a staging
table's COPY for large ones) and SQLite's give the same rows."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from wattline.store import bulk, sync_logs_repo
from wattline.store.tables import system_poll_state, vendor_sync_logs

COLS = ("system_id", "consecutive_failures", "last_poll_ms", "last_error")
SIZES = [3, bulk.UNNEST_MAX_ROWS + 100]  # below and above the unnest limit


def stored(engine) -> dict[int, tuple]:
    c = system_poll_state.c
    with engine.connect() as conn:
        return {r[0]: tuple(r[1:]) for r in conn.execute(
            select(c.system_id, c.consecutive_failures, c.last_poll_ms, c.last_error))}


@pytest.mark.parametrize("n", SIZES)
def test_upsert_inserts_then_updates_or_keeps_and_update_sets_only_its_columns(dbs, n):
    tel = dbs.telemetry
    first = [(i, i % 5, 1_000 * i, None if i % 2 else f"e{i}\ttab\\slash") for i in range(n)]
    with tel.begin() as conn:
        bulk.upsert(conn, system_poll_state, COLS, first, key=("system_id",))
    assert stored(tel) == {r[0]: r[1:] for r in first}

    # half of them again with new values, and as many new ones: update by default...
    second = [(i, 9, None, "again") for i in range(n // 2, n + n // 2)]
    with tel.begin() as conn:
        bulk.upsert(conn, system_poll_state, COLS, second, key=("system_id",))
    want = {r[0]: r[1:] for r in first} | {r[0]: r[1:] for r in second}
    assert stored(tel) == want

    # ...or, with update=(), leave the stored rows as they are
    third = [(i, 7, 7, "ignored") for i in range(n + n // 2 + 1)]
    with tel.begin() as conn:
        bulk.upsert(conn, system_poll_state, COLS, third, key=("system_id",), update=())
    want[n + n // 2] = (7, 7, "ignored")
    assert stored(tel) == want

    # update: only the named columns of the rows whose key matches; an unknown key changes nothing
    # (every stored row but one, so that the larger size takes the staging path here too)
    changes = [(i + 100, None if i % 2 else f"u{i}", i) for i in range(n - 1)] + [(1, "x", 10**9)]
    with tel.begin() as conn:
        bulk.update(conn, system_poll_state, ("consecutive_failures", "last_error"), ("system_id",), changes)
    for failures, error, sid in changes:
        if sid in want:
            want[sid] = (failures, want[sid][1], error)
    assert stored(tel) == want


@pytest.mark.parametrize("n", SIZES)
def test_call_logs_written_in_a_transaction_read_back_as_they_were_given(dbs, n):
    at = datetime(2026, 12, 4, 1, 0, tzinfo=timezone.utc)
    rows = [dict(vendor_id=7, plant_id=i, sync_type="telemetry", status="error" if i % 3 else "success",
                 error_message=None if i % 3 == 0 else 'HTTP 500 "quoted"\nline',
                 records_processed=i, started_at=at, completed_at=at,
                 metadata={"job": "poll", "path": f"/api/x/{i}", "attempt": 1, "tab": "a\tb"})
            for i in range(n)]
    rows.append(dict(vendor_id=8, plant_id=None, sync_type="job", status="success", started_at=at,
                     metadata=None))  # records_processed and completed_at left out
    with dbs.telemetry.begin() as conn:
        sync_logs_repo.add_in(conn, rows)
    c = vendor_sync_logs.c
    with dbs.telemetry.connect() as conn:
        got = [dict(r) for r in conn.execute(
            select(c.vendor_id, c.plant_id, c.sync_type, c.status, c.error_message, c.records_processed,
                   c.metadata).order_by(c.id)).mappings()]
    want = [dict(vendor_id=r["vendor_id"], plant_id=r["plant_id"], sync_type=r["sync_type"], status=r["status"],
                 error_message=r.get("error_message"), records_processed=r.get("records_processed", 0),
                 metadata=r["metadata"]) for r in rows]
    assert got == want
    assert len(sync_logs_repo.call_times_since(dbs.telemetry, 7, at)) == n


@pytest.mark.parametrize("n", SIZES)
def test_a_column_mixing_ints_floats_and_numpy_floats_is_stored_as_its_type(dbs, n):
    import numpy as np

    from wattline.store.tables import aggregates

    cols = ("series_id", "period", "bucket_start", "bucket_end", "value_min", "value_count")
    mixed = [1, 2.5, np.float64(3.25), None, 4]  # a typed COPY took every one of them
    rows = [(1, "day", i, i + 1, mixed[i % 5], i % 2 == 1) for i in range(n)]  # and bools as ints
    with dbs.telemetry.begin() as conn:
        bulk.upsert(conn, aggregates, cols, rows, key=("series_id", "period", "bucket_start"))
    c = aggregates.c
    with dbs.telemetry.connect() as conn:
        got = conn.execute(select(c.bucket_start, c.bucket_end, c.value_min, c.value_count)
                           .order_by(c.bucket_start)).all()
    assert [tuple(r) for r in got] == [
        (i, i + 1, None if mixed[i % 5] is None else float(mixed[i % 5]), i % 2) for i in range(n)]

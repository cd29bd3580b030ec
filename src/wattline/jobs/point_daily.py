"""The daily aggregates of every point (seed 003 ``/api/cron/daily``): catch up the
missing ones, or re-derive them all.

The pipeline keeps each series' local-day aggregates (``aggregates``, period ``day``,
and the months and years above them) current as readings arrive; this job repairs
what it could not (a crash between commits, data written by another path):

* ``catchup``: every local day that holds readings of a series but has no stored
  day row is derived from its readings and ledger entries (``pipeline.aggregate.recompute``);
  days that have one are left alone;
* ``clear``: every day from the series' first stored reading to its last is
  re-derived (upsert: the same inputs give equal rows).

Retention rule (jobs/cleanup.py): raw readings are deleted in whole local days
before a midnight M, so every day still holding readings is complete, and both actions
derive only days from the first remaining reading on. Days before it are never
re-derived: their stored rows, computed while the readings existed, are the record.

Every run is a ``point_daily`` row of the ``jobs`` table (its result: days filled or
re-derived), which ``GET /api/admin/database`` shows as the last daily run.
"""

from __future__ import annotations

import asyncio

import numpy as np

from wattline import logs
from wattline.context import AppContext
from wattline.domain import buckets as B
from wattline.pipeline import aggregate
from wattline.store import point_aggs
from wattline.store.engines import write_transaction

log = logs.get("wattline.jobs.point_daily")

ACTIONS = ("catchup", "clear")
JOB_KIND = "point_daily"
CHUNK_S = 31 * 86400  # re-derive at most about a month of one series per transaction


def missing_days(conn, series_id: int, tz: str) -> list[tuple[int, int]]:
    """(start, end) of the local days of a series that hold readings but no stored day row."""
    slots = point_aggs.reading_slots(conn, series_id)
    if not len(slots):
        return []
    starts, ends = B.calendar_parents(slots, {series_id: tz}, np.full(len(slots), series_id, np.int64), "day")
    stored = point_aggs.stored_day_starts(conn, series_id)
    days = sorted({(int(s), int(e)) for s, e in zip(starts.tolist(), ends.tolist())})
    return [d for d in days if d[0] not in stored]


def _runs(days: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Consecutive days joined into [start, end) runs of at most ``CHUNK_S``."""
    runs: list[list[int]] = []
    for s, e in days:
        if runs and runs[-1][1] == s and e - runs[-1][0] <= CHUNK_S:
            runs[-1][1] = e
        else:
            runs.append([s, e])
    return [(a, b) for a, b in runs]


def _series(tel, series_ids: list[int] | None) -> tuple[dict[int, str], list[int]]:
    """(series id -> timezone of every series, the ids asked for that exist: all by default)."""
    with tel.connect() as conn:
        tz = point_aggs.all_series(conn)
    return tz, sorted(tz) if series_ids is None else [int(s) for s in series_ids if int(s) in tz]


def catchup(ctx: AppContext, series_ids: list[int] | None = None) -> dict:
    """Derive the missing day aggregates of the series (all by default); returns
    {series, days_filled}. Idempotent: a second run fills nothing."""
    tel = ctx.dbs.telemetry
    tz, ids = _series(tel, series_ids)
    filled = 0
    for sid in ids:
        with tel.connect() as conn:
            days = missing_days(conn, sid, tz[sid])
        for a, b in _runs(days):
            with write_transaction(tel, [sid]) as conn:
                aggregate.recompute(conn, {sid: (a, b)}, {sid: tz[sid]})
        filled += len(days)
    return {"action": "catchup", "series": len(ids), "days_filled": filled}


def clear(ctx: AppContext, series_ids: list[int] | None = None) -> dict:
    """Re-derive every day aggregate from the first remaining reading of each series to
    its last; returns {series, days_derived}."""
    tel = ctx.dbs.telemetry
    tz, ids = _series(tel, series_ids)
    derived = 0
    for sid in ids:
        with tel.connect() as conn:
            span = point_aggs.reading_span(conn, sid)
        if span is None:
            continue
        lo, hi = span[0], span[1] + 1
        (d0,), _ = B.calendar_parents(np.array([lo], np.int64), {sid: tz[sid]}, np.array([sid], np.int64), "day")
        _, (d1,) = B.calendar_parents(np.array([hi - 1], np.int64), {sid: tz[sid]}, np.array([sid], np.int64), "day")
        for a in range(int(d0), int(d1), CHUNK_S):
            with write_transaction(tel, [sid]) as conn:
                aggregate.recompute(conn, {sid: (a, min(a + CHUNK_S, int(d1)))}, {sid: tz[sid]})
        derived += len(B.bucket_range("day", int(d0), int(d1), tz[sid]))
    return {"action": "clear", "series": len(ids), "days_derived": derived}


def run(ctx: AppContext, action: str) -> dict:
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    result = catchup(ctx) if action == "catchup" else clear(ctx)
    log.info("point_daily.done", **result)
    return result


async def run_daily_job(ctx: AppContext, action: str) -> dict:
    """:func:`run` as a ``point_daily`` job of this process (one at a time across
    processes: ``JobAlreadyRunning`` otherwise); returns the job row."""
    from wattline.jobs.runner import JobRunner

    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")

    async def work(report) -> dict:
        return await asyncio.to_thread(run, ctx, action)

    runner = JobRunner(ctx)
    job_id = await runner.start(JOB_KIND, {"action": action}, work, key=(JOB_KIND, 0))
    await runner.wait_all()
    return await asyncio.to_thread(runner.get, job_id)

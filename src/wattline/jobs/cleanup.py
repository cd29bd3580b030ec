"""Raw-reading retention (seed 003 ``/api/cron/cleanup``, weekly): delete the raw
readings of each system older than its organization's ``raw_retention_days``
(``NULL``: kept for ever), keeping every aggregate.

The rule, and why it keeps the numbers right:

* A system's readings are deleted in **whole local days**: those before M, the local
  midnight (the system's zone) at or before ``now - raw_retention_days`` (by
  ``wattline.clock``). A ledger entry lives on the row of the reading it ends at, so
  an entry goes with its reading; the entry ending at the first kept reading stays
  (its ``start_ts`` names a deleted reading) and still splits over the days it spans.
* Before deleting, the daily catch-up (jobs/point_daily.py) fills any missing day
  aggregate of those series, so every deleted day is summarised in ``aggregates``
  (day, and the months and years above it), which are never deleted.
* Later catch-ups and clears derive only days from the first remaining reading on
  (every such day is complete, since M is a midnight), so a deleted day is never
  re-derived from nothing: the historical API's daily level still answers for it;
  its raw and 5-minute levels are empty for it.
* Retention is at least :data:`MIN_RETENTION_DAYS` days, so yesterday (the nightly
  reconciliation's day) and late readings of the last day are never cut.

Raw events (payloads) are not touched. Every run is a ``cleanup`` job row.
"""

from __future__ import annotations

import asyncio

import numpy as np

from wattline import clock, logs
from wattline.context import AppContext
from wattline.domain import buckets as B
from wattline.jobs import point_daily
from wattline.store import point_aggs
from wattline.store.engines import write_transaction

log = logs.get("wattline.jobs.cleanup")

JOB_KIND = "cleanup"
MIN_RETENTION_DAYS = 2


def cutoff(now_s: int, retention_days: int, tz: str) -> int:
    """M: the local midnight of ``tz`` at or before ``now_s - retention_days`` days (epoch s)."""
    (start,), _ = B.calendar_parents(np.array([int(now_s) - int(retention_days) * 86400], np.int64),
                                     {0: tz}, np.zeros(1, np.int64), "day")
    return int(start)


def run(ctx: AppContext, now_s: int | None = None) -> dict:
    """Apply every organization's retention; returns {systems, readings_deleted, details}.
    Idempotent: a second run at the same instant deletes nothing."""
    now = clock.now_s() if now_s is None else int(now_s)
    with ctx.dbs.main_reader.connect() as conn:
        targets = point_aggs.retention_of_systems(conn)
        series = point_aggs.series_of_assets(conn, [t["system_id"] for t in targets])
    details, total = [], 0
    for t in targets:
        days = max(int(t["retention_days"]), MIN_RETENTION_DAYS)
        m = cutoff(now, days, t["timezone"])
        sids = series[t["system_id"]]
        with ctx.dbs.telemetry.connect() as conn:
            old = point_aggs.count_readings_before(conn, sids, m)
        deleted = 0
        if old:
            point_daily.catchup(ctx, sids)  # every day about to lose its readings is summarised
            with write_transaction(ctx.dbs.telemetry, sids) as conn:
                deleted = point_aggs.delete_readings_before(conn, sids, m)
        total += deleted
        details.append({"systemId": t["system_id"], "organizationId": t["organization_id"],
                        "retentionDays": days, "cutoff": m, "readingsDeleted": deleted})
    result = {"systems": len(targets), "readings_deleted": total, "now": now, "details": details}
    log.info("cleanup.done", systems=len(targets), readings_deleted=total)
    return result


async def run_cleanup_job(ctx: AppContext) -> dict:
    """:func:`run` as a ``cleanup`` job (one at a time across processes); returns the job row."""
    from wattline.jobs.runner import JobRunner

    async def work(report) -> dict:
        return await asyncio.to_thread(run, ctx)

    runner = JobRunner(ctx)
    job_id = await runner.start(JOB_KIND, {}, work, key=(JOB_KIND, 0))
    await runner.wait_all()
    return await asyncio.to_thread(runner.get, job_id)

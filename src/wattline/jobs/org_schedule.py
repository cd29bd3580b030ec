"""The organizations' local-time work on the job engine: each organization's daily
sync once its local time has passed 00:15 (and every ``sync_interval_minutes`` when
that is under a day), its nightly reconciliation of yesterday once it has passed 02:00.

A periodic task of the workers (every 5 minutes, one run per tick however many workers
are up) defers what is due and not yet deferred. Each run has a key — organization and
local date (or interval slot) — kept in the job's arguments: a key already in the queue,
in any state, is not deferred again, so a day's run happens once, also after a worker
was down at 00:15 (it runs late, not never)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from wattline import logs

log = logs.get("wattline.jobs.org_schedule")

SYNC_AT = (0, 15)  # local hour, minute (as serve's schedule)
RECONCILE_AT = (2, 0)


@dataclass(frozen=True)
class Run:
    task: str
    run_key: str
    lock: str
    kwargs: dict = field(default_factory=dict)


def due_runs(sync_orgs, reconcile_orgs, now: int) -> list[Run]:
    """The runs due at ``now`` (epoch s): ``sync_orgs`` as (id, name, timezone,
    interval minutes), ``reconcile_orgs`` as dicts with id, name, timezone."""
    runs = []
    for org_id, _name, tz, interval in sync_orgs:
        local = datetime.fromtimestamp(now, ZoneInfo(tz))
        if (local.hour, local.minute) >= SYNC_AT:
            runs.append(Run("sync", f"sync:{org_id}:{local.date().isoformat()}", "sync",
                            {"organization_id": org_id, "only_due": True}))
        if interval and interval < 1440:
            slot = now // (interval * 60)
            runs.append(Run("sync", f"sync:{org_id}:every{interval}m:{slot}", "sync",
                            {"organization_id": org_id, "only_due": True}))
    for org in reconcile_orgs:
        local = datetime.fromtimestamp(now, ZoneInfo(org["timezone"]))
        if (local.hour, local.minute) >= RECONCILE_AT:
            yesterday = (local.date() - timedelta(days=1)).isoformat()
            runs.append(Run("reconcile", f"reconcile:{org['id']}:{local.date().isoformat()}",
                            f"reconcile:{org['id']}", {"organization": org["name"], "day": yesterday}))
    return runs


def _organizations(ctx):
    from wattline.jobs.reconcile import organizations
    from wattline.store.auto_sync_repo import auto_sync_organizations

    return auto_sync_organizations(ctx.dbs.main_reader), organizations(ctx)


async def defer_due(engine, ctx, now: int) -> list[int]:
    """Defer on ``engine`` (an open procrastinate App) the runs due at ``now`` that were
    not deferred before; returns the new job ids. Call it from one task at a time (the
    periodic task's lock): the check and the defer are not one transaction."""
    from procrastinate.exceptions import AlreadyEnqueued

    from wattline.store import engine_jobs_repo

    sync_orgs, reconcile_orgs = await asyncio.to_thread(_organizations, ctx)
    ids = []
    for run in due_runs(sync_orgs, reconcile_orgs, now):
        if await engine_jobs_repo.has_job(engine.connector, run.task, run.run_key):
            continue
        try:
            jid = await engine.configure_task(run.task, lock=run.lock, queueing_lock=run.run_key).defer_async(
                run_key=run.run_key, **run.kwargs)
        except AlreadyEnqueued:
            continue
        log.info("org_schedule.deferred", task=run.task, run_key=run.run_key, job_id=jid)
        ids.append(jid)
    return ids

"""Timezone-aware schedules (APScheduler): the daily sync at 00:15 local time of each
organization, and more often when its ``sync_interval_minutes`` asks for it; the
nightly reconciliation of each organization's yesterday at 02:00 in its zone; minute
polling of the monitored systems; the points' daily catch-up at 00:05 UTC and the
weekly raw-reading cleanup (retention) on Sundays at 03:30 UTC. With the job engine
configured (WATTLINE_JOBS_URL) none of it: the workers run it (jobs/engine_tasks.py)."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from wattline import logs
from wattline.context import AppContext
from wattline.jobs.reconcile import organizations, run_reconcile_job
from wattline.jobs.sync import sync_all
from wattline.store.auto_sync_repo import auto_sync_organizations

log = logs.get("wattline.scheduler")


def build_scheduler(ctx: AppContext, poller=None) -> AsyncIOScheduler:
    """The schedule of every auto-sync organization (blocking: reads the registry;
    from async code, build it in a worker thread and ``start()`` it on the loop).
    ``poller``: the process's :class:`~wattline.jobs.poll.Poller` (one is made if not
    given), shared with ``POST /api/cron/poll`` so both see the same in-flight polls."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    from wattline.jobs.dispatch import engine_configured

    if engine_configured(ctx.settings):  # jobs/org_schedule.py and engine_tasks.py: once per period
        log.info("scheduler.engine", note="the organizations' daily sync and nightly reconciliation, minute "
                 "polling, point daily and cleanup run on the job engine's workers")
        return scheduler
    for org_id, name, tz, interval in auto_sync_organizations(ctx.dbs.main_reader):
        async def run(org_id=org_id):
            result = await sync_all(ctx, organization_ids={org_id}, only_due=True)
            log.info("scheduler.sync_done", organization_id=org_id, plants=result.plantsSynced,
                     errors=len(result.errors))

        scheduler.add_job(run, CronTrigger(hour=0, minute=15, timezone=tz), id=f"daily-sync-{org_id}",
                          name=f"daily sync {name}", coalesce=True, misfire_grace_time=3600)
        if interval and interval < 1440:
            scheduler.add_job(run, IntervalTrigger(minutes=interval), id=f"interval-sync-{org_id}",
                              name=f"sync every {interval} min {name}", coalesce=True, max_instances=1)
        log.info("scheduler.org", organization_id=org_id, timezone=tz, interval_minutes=interval)
    for org in organizations(ctx):
        scheduler.add_job(nightly_reconcile, reconcile_trigger(org["timezone"]), args=(ctx, org),
                          id=f"reconcile-{org['id']}", name=f"nightly reconciliation {org['name']}",
                          coalesce=True, max_instances=1, misfire_grace_time=3600)
    if poller is None:
        from wattline.jobs.poll import Poller

        poller = Poller(ctx)
    add_poll_job(scheduler, poller)
    add_point_jobs(scheduler, ctx)
    return scheduler


def add_point_jobs(scheduler: AsyncIOScheduler, ctx: AppContext) -> None:
    """The daily aggregates' catch-up (00:05 UTC) and the weekly cleanup (Sunday 03:30 UTC):
    each a job row (jobs/point_daily.py, jobs/cleanup.py); one run at a time across processes."""
    from wattline.jobs.cleanup import run_cleanup_job
    from wattline.jobs.point_daily import run_daily_job

    async def daily() -> None:
        job = await run_daily_job(ctx, "catchup")
        log.info("scheduler.point_daily_done", job_id=job["id"], status=job["status"])

    async def cleanup() -> None:
        job = await run_cleanup_job(ctx)
        log.info("scheduler.cleanup_done", job_id=job["id"], status=job["status"])

    scheduler.add_job(daily, daily_trigger(), id="point-daily", name="daily aggregates catch-up",
                      coalesce=True, max_instances=1, misfire_grace_time=3600)
    scheduler.add_job(cleanup, cleanup_trigger(), id="cleanup-weekly", name="weekly raw-reading cleanup",
                      coalesce=True, max_instances=1, misfire_grace_time=6 * 3600)


def daily_trigger() -> CronTrigger:
    """00:05 UTC every day (seed 003's daily aggregation time)."""
    return CronTrigger(hour=0, minute=5, timezone="UTC")


def cleanup_trigger() -> CronTrigger:
    """Sundays at 03:30 UTC."""
    return CronTrigger(day_of_week="sun", hour=3, minute=30, timezone="UTC")


def add_poll_job(scheduler: AsyncIOScheduler, poller) -> None:
    """Minute polling of the active systems (jobs/poll.py): each tick starts the due
    polls and returns, so a slow vendor never holds the next tick; a system still being
    polled is skipped by the poller, not queued. The polls are spread over the minute
    (``Poller.spread_window_s``): a fleet's answers come evenly, not all at the tick."""
    async def tick() -> None:
        tasks, report = await poller.start_due(cause="CRON", spread=True)
        log.info("scheduler.poll_tick", started=len(tasks), skipped_running=len(report.skipped_running),
                 not_due=report.not_due)

    scheduler.add_job(tick, CronTrigger(second=0), id="poll-systems", name="poll systems every minute",
                      coalesce=True, max_instances=1, misfire_grace_time=30)


def reconcile_trigger(tz: str) -> CronTrigger:
    """02:00 local time of zone ``tz`` every day."""
    return CronTrigger(hour=2, minute=0, timezone=tz)


async def nightly_reconcile(ctx: AppContext, org: dict) -> dict:
    """Reconcile the organization's yesterday (its zone, by ``wattline.clock``) as a
    ``reconcile`` job (work off the loop); returns the job row."""
    job = await run_reconcile_job(ctx, organization=org["name"])
    log.info("scheduler.reconcile_done", organization_id=org["id"], job_id=job["id"], status=job["status"])
    return job

"""The engine's tasks: each calls an existing job function (no logic here). One plant /
system is worked on by one worker at a time: the job functions hold its lease
(jobs/leases.py), and jobs of one plant or system share a ``lock`` so they queue
rather than wait; periodic tasks are deduplicated per period by procrastinate across
workers. A job function that reports progress in-process reports it to the engine job
here (engine_progress.report), in the same shape."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timezone

import procrastinate
import procrastinate.testing

from wattline import logs
from wattline.config import get_settings
from wattline.jobs import engine_progress
from wattline.jobs.engine import build_app

log = logs.get("wattline.jobs.engine")
# Without WATTLINE_JOBS_URL the tasks still exist (so this module imports) on an
# in-memory connector; nothing defers to it: jobs then run in-process.
APP_URL = get_settings().jobs_url  # the queue ``app`` is on (engine.engine_app compares)
app = build_app(APP_URL) if APP_URL else procrastinate.App(connector=procrastinate.testing.InMemoryConnector())
RETRY = procrastinate.RetryStrategy(max_attempts=3, wait=5)
_ctx = None
_ctx_lock = threading.Lock()  # the loop and a worker thread may both ask first


def ctx():
    global _ctx
    with _ctx_lock:
        if _ctx is None:
            from wattline.context import open_context

            _ctx = open_context()
    return _ctx


@app.task(name="backfill", retry=RETRY)
async def backfill(plant_id: int) -> dict:
    from wattline.jobs.backfill import backfill_plant

    return (await backfill_plant(ctx(), plant_id, on_progress=_backfill_progress)).to_dict()


@app.task(name="system_backfill", retry=RETRY)
async def system_backfill(system_id: int, since_ts: int) -> dict:
    from wattline.jobs.system_backfill import backfill_system

    return (await backfill_system(ctx(), system_id, since_ts, on_progress=_backfill_progress)).to_dict()


def _backfill_progress(p) -> None:
    engine_progress.report(p.public())


@app.task(name="sync", retry=RETRY)
async def sync(organization_id: int | None = None, only_due: bool = False, run_key: str | None = None,
               plant_id: int | None = None) -> dict:
    """``run_key``: the organizations' schedule's once-a-day key (jobs/org_schedule.py).
    A plant another worker holds (its backfill) is left to a sync of that plant alone,
    deferred under the plant's lock (``plant:ID``): procrastinate runs it after the
    backfill, so the sync job itself does not wait."""
    from wattline.jobs.sync import sync_all

    if plant_id is not None:  # a deferred one: waits for the plant's lease if still held
        return (await sync_all(ctx(), plant_ids={plant_id}, on_progress=engine_progress.report)).to_dict()
    orgs = {organization_id} if organization_id is not None else None
    return (await sync_all(ctx(), organization_ids=orgs, only_due=only_due, on_busy=defer_plant_syncs,
                           on_progress=engine_progress.report)).to_dict()


async def defer_plant_syncs(plant_ids: list[int]) -> None:
    """A sync of each plant, under its lock; one already queued is not queued twice."""
    from procrastinate.exceptions import AlreadyEnqueued

    from wattline.jobs.leases import plant_resource

    for pid in plant_ids:
        lock = plant_resource(pid)
        try:
            await sync.configure(lock=lock, queueing_lock=f"sync:{lock}").defer_async(plant_id=pid)
        except AlreadyEnqueued:
            pass


#: the minute poll's shards have a queue of their own (``wattline worker --poll-jobs``);
#: everything else is on procrastinate's default queue
POLL_QUEUE = "poll"
JOB_QUEUES = ("default",)  # a tuple here (no module-level list in jobs/); procrastinate takes a list


@app.task(name="poll", retry=RETRY, queue=POLL_QUEUE)
async def poll(cause: str = "CRON", force: bool = False, shard: int | None = None,
               shards: int | None = None) -> dict:
    """A tick over every system, or over shard ``shard`` of ``shards`` (ids modulo)."""
    from wattline.jobs.poll import poll_once

    part = (shard, shards) if shards else None
    poller = worker_poller()
    if poller is None:  # not on a worker's loop (a task run directly): a poller for this tick
        return (await poll_once(ctx(), cause=cause, force=force, shard=part)).to_dict()
    return (await poller.poll(cause=cause, force=force, shard=part)).to_dict()


_poller = None  # (loop, Poller) of this worker process


def worker_poller():
    """The worker process's long-lived poller: vendor sessions (a login, an OAuth
    token, HTTP connections) outlive a minute's tick, as in ``wattline serve``; a
    poller per tick logged in to every account every minute. None outside a worker
    (``start_worker_poller`` not called)."""
    if _poller is None or _poller[0] is not asyncio.get_running_loop():
        return None
    return _poller[1]


def start_worker_poller() -> None:
    """Called by ``wattline worker`` on its loop before taking jobs."""
    global _poller
    from wattline.jobs.poll import Poller

    # its polls at once over all its poll jobs (shards share them): WATTLINE_POLL_CONCURRENCY
    _poller = (asyncio.get_running_loop(), Poller(ctx()))


async def stop_worker_poller() -> None:
    """On the worker's way out: polls still running are cancelled and their claims freed."""
    global _poller
    if _poller is not None and _poller[0] is asyncio.get_running_loop():
        poller, _poller = _poller[1], None
        await poller.aclose()


def _succeeded(job: dict) -> dict:
    """A job row of this process's runner: a failed one fails the engine's job too
    (retried, then ``failed``), never a silent success."""
    if job.get("status") != "succeeded":
        raise RuntimeError(f"{job.get('kind')} job {job.get('id')} {job.get('status')}: {job.get('error')}")
    return {"job": str(job["id"]), "status": job["status"]}


async def _as_job(kind: str, params: dict, work) -> dict:
    """Run ``work`` as a job row of this worker (progress and result on /api/jobs, as
    in-process; the progress on the engine's job too), then :func:`_succeeded`."""
    import asyncio

    from wattline.jobs.runner import JobRunner, tee_progress

    runner = JobRunner(ctx())
    job_id = await runner.start(kind, params, tee_progress(work, engine_progress.reporter()))
    await runner.wait_all()
    return _succeeded(await asyncio.to_thread(runner.get, job_id))


@app.task(name="daily", retry=RETRY)
async def daily(action: str = "catchup") -> dict:
    from wattline.jobs.point_daily import run_daily_job

    return _succeeded(await run_daily_job(ctx(), action))


@app.task(name="cleanup", retry=RETRY)
async def cleanup() -> dict:
    from wattline.jobs.cleanup import run_cleanup_job

    return _succeeded(await run_cleanup_job(ctx()))


@app.task(name="reconcile", retry=RETRY)
async def reconcile(organization: str | None = None, day: str | None = None, run_key: str | None = None) -> dict:
    """One organization's (or every one's) ``day`` (ISO date; default: yesterday in its zone)."""
    from datetime import date

    from wattline.jobs.reconcile import run_reconcile_job

    return _succeeded(await run_reconcile_job(ctx(), organization=organization,
                                              day=None if day is None else date.fromisoformat(day),
                                              on_progress=engine_progress.reporter()))


@app.task(name="recalculate_classroom", retry=RETRY)
async def recalculate_classroom(organization: str, classroom_id: int, start: int, end: int, params: dict) -> dict:
    """``POST /api/power-analytics/recalculate`` on a worker."""
    import asyncio

    from wattline.jobs.reconcile import organizations, recalculate_work

    (org,) = await asyncio.to_thread(organizations, ctx(), organization)
    return await _as_job("recalculate", params, recalculate_work(ctx(), org, classroom_id, start, end))


@app.task(name="reprice", retry=RETRY)
async def reprice(cost_version_id: int, params: dict) -> dict:
    """A new cost version's recalculation on a worker."""
    from wattline.jobs.reprice import reprice_work

    return await _as_job("recalculate", params, reprice_work(ctx(), cost_version_id))


@app.periodic(cron="* * * * *", periodic_id="poll")
@app.task(name="periodic_poll", queueing_lock="periodic_poll")
async def periodic_poll(timestamp: int) -> None:
    """The minute tick as ``poll_shards`` jobs, which any workers take up; one shard is
    worked on by one worker at a time (its lock), and one still queued is not queued twice."""
    from procrastinate.exceptions import AlreadyEnqueued

    shards = get_settings().poll_shards
    for k in range(shards):
        name = f"poll:{k}/{shards}"
        try:
            # not spread (Poller.poll(spread=True)): measured at 5,000 systems on 2 workers,
            # spread shards fell from all 5,000 to 3,846 a minute (small write batches)
            await poll.configure(lock=name, queueing_lock=name).defer_async(cause="CRON", shard=k, shards=shards)
        except AlreadyEnqueued:  # the previous minute's is still waiting: overrun, not queued twice
            log.warning("poll.shard_still_queued", shard=k, shards=shards)


@app.periodic(cron="5 0 * * *", periodic_id="daily")
@app.task(name="periodic_daily", queueing_lock="periodic_daily")
async def periodic_daily(timestamp: int) -> None:
    await daily()


@app.periodic(cron="30 3 * * 0", periodic_id="cleanup")
@app.task(name="periodic_cleanup", queueing_lock="periodic_cleanup")
async def periodic_cleanup(timestamp: int) -> None:
    await cleanup()


@app.periodic(cron="*/5 * * * *", periodic_id="org_schedule")
@app.task(name="org_schedule", lock="org_schedule", queueing_lock="org_schedule", pass_context=True)
async def org_schedule(context: procrastinate.JobContext, timestamp: int) -> None:
    """Every 5 minutes: the organizations' local-time daily sync and nightly
    reconciliation that are due and not yet deferred (jobs/org_schedule.py)."""
    from wattline import clock
    from wattline.jobs.org_schedule import defer_due

    import asyncio

    c = await asyncio.to_thread(ctx)  # its first call opens the databases: off the loop (heartbeats)
    await defer_due(context.app, c, clock.now_s())


@app.periodic(cron="* * * * *", periodic_id="retry_stalled")
@app.task(name="retry_stalled", queueing_lock="retry_stalled", pass_context=True)
async def retry_stalled(context: procrastinate.JobContext, timestamp: int) -> None:
    """A job whose worker died (three heartbeats missed) goes back to the queue."""
    await retry_stalled_jobs(context.app, stalled_after_s())


def stalled_after_s() -> float:
    """Three missed heartbeats (WATTLINE_WORKER_HEARTBEAT_S, 10 s by default) is a dead
    worker; fewer could requeue the job of a live worker between two of its heartbeats."""
    return 3 * get_settings().worker_heartbeat_s


async def retry_stalled_jobs(engine: procrastinate.App, after_s: float) -> list[int]:
    """Put back on the queue the running jobs whose worker sent no heartbeat for
    ``after_s`` (it was killed or hung); another worker takes them. Returns their ids."""
    from procrastinate.exceptions import UniqueViolation
    from procrastinate.jobs import Status

    ids = []
    for job in await engine.job_manager.get_stalled_jobs(seconds_since_heartbeat=after_s):
        log.warning("engine.retry_stalled", job_id=job.id, task=job.task_name)
        try:
            await engine.job_manager.retry_job_by_id_async(job.id, retry_at=datetime.now(timezone.utc))
        except UniqueViolation:
            # the same job is already queued again (its queueing lock, e.g. the next minute's
            # poll shard): that one does the work, so the dead run ends aborted (superseded,
            # not a failure of its task); retrying it would fail forever and its lock would
            # keep the queued one from ever running
            log.warning("engine.stalled_superseded", job_id=job.id, task=job.task_name)
            await engine.job_manager.finish_job_by_id_async(job.id, status=Status.ABORTED, delete_job=False)
        ids.append(job.id)
    return ids

"""``wattline worker`` and ``wattline jobs defer|list|wait`` (the job engine)."""

from __future__ import annotations

import asyncio
import time

import typer

from wattline import aio

from wattline.cli import app, console, _fail
from wattline.domain import timeutil

jobs_app = typer.Typer(help="Jobs on the distributed engine (WATTLINE_JOBS_URL).", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


def _app():
    from wattline.config import get_settings

    if not get_settings().jobs_url:
        _fail("WATTLINE_JOBS_URL is not set: jobs run in-process")
    from wattline.jobs import engine_tasks

    return engine_tasks.app


@app.command("worker")
def worker_cmd(concurrency: int = typer.Option(4, help="jobs run at once (poll shards apart)"),
               poll_jobs: int = typer.Option(2, "--poll-jobs", min=1,
                                             help="minute-poll shards run at once (they share one poller)")) -> None:
    """Run engine jobs until SIGTERM/SIGINT (procrastinate stops gracefully on those)."""
    eng = _app()
    from wattline.config import get_settings
    from wattline.jobs import engine_tasks
    from wattline.jobs.engine import apply_schema, record_outcome

    common = dict(worker_middleware=[record_outcome], update_heartbeat_interval=get_settings().worker_heartbeat_s)

    async def run():
        async with eng.open_async():
            await apply_schema(eng)
            engine_tasks.start_worker_poller()
            # The minute's poll shards have a queue and job slots of their own: with the
            # others' slots a free worker took every shard of a tick at once and left the
            # other workers idle (measured: 63 % against 13 % of a core with 2 workers).
            jobs = asyncio.create_task(eng.run_worker_async(
                queues=list(engine_tasks.JOB_QUEUES), concurrency=concurrency, install_signal_handlers=True,
                name="jobs", **common))
            polls = asyncio.create_task(eng.run_worker_async(
                queues=[engine_tasks.POLL_QUEUE], concurrency=poll_jobs, install_signal_handlers=False,
                name="polls", **common))
            try:  # one ending (a signal, a lost queue) ends the other
                done, _ = await asyncio.wait({jobs, polls}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (jobs, polls):
                    task.cancel()  # procrastinate stops gracefully when cancelled
                results = await asyncio.gather(jobs, polls, return_exceptions=True)
                await engine_tasks.stop_worker_poller()
            for result in results:
                if isinstance(result, Exception):
                    raise result

    aio.run(run())


@jobs_app.command("defer")
def defer_cmd(kind: str = typer.Argument(..., help="backfill | sync | poll | system-backfill | daily | cleanup"),
              plant: int = typer.Option(None), system: int = typer.Option(None),
              since: str = typer.Option(None), org: int = typer.Option(None)) -> None:
    _app()
    from procrastinate.exceptions import AlreadyEnqueued

    from wattline.jobs.engine import defer

    try:
        jid = _defer(defer, kind, plant, system, since, org)
    except AlreadyEnqueued:  # its queueing lock: the same job is already waiting
        console.print(f"not deferred: a {kind} job is already queued")
        return
    console.print(f"deferred job {jid}")


def _defer(defer, kind, plant, system, since, org) -> int:
    from wattline.jobs.leases import plant_resource, system_resource

    if kind == "backfill" and plant is not None:
        jid = asyncio.run(defer("backfill", lock=plant_resource(plant), plant_id=plant))
    elif kind == "sync":
        kw = {"organization_id": org} if org is not None else {}
        jid = asyncio.run(defer("sync", lock="sync", queueing_lock=f"sync:{org}", **kw))
    elif kind == "poll":
        jid = asyncio.run(defer("poll", lock="poll", queueing_lock="poll"))
    elif kind == "system-backfill" and system is not None and since:
        jid = asyncio.run(defer("system_backfill", lock=system_resource(system), system_id=system,
                                since_ts=timeutil.parse_instant(since)))
    elif kind == "daily":
        jid = asyncio.run(defer("daily", lock="daily", queueing_lock="daily:catchup"))
    elif kind == "cleanup":
        jid = asyncio.run(defer(kind, lock=kind, queueing_lock=kind))
    else:
        _fail(f"cannot defer {kind!r} with these options")
    return jid


@jobs_app.command("list")
def list_cmd(status: str = typer.Option(None, help="todo | doing | succeeded | failed | ...")) -> None:
    eng = _app()
    from wattline.store import engine_jobs_repo

    async def run():
        async with eng.open_async():
            return await engine_jobs_repo.list_jobs(eng.connector, status)

    for j in asyncio.run(run()):
        # plain tab-separated lines (no wrapping): read by scripts and the fault suite
        typer.echo(f"{j['id']}\t{j['task_name']}\t{j['status']}\tattempts={j['attempts']}\t{j['args']}")


@jobs_app.command("wait")
def wait_cmd(timeout: float = typer.Option(300.0, help="seconds")) -> None:
    """Wait until no job is todo or doing; exit 1 on timeout."""
    eng = _app()
    from wattline.store import engine_jobs_repo

    async def run() -> bool:
        async with eng.open_async():
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                if await engine_jobs_repo.pending_count(eng.connector) == 0:
                    return True
                await asyncio.sleep(0.5)
            return False

    if not asyncio.run(run()):
        _fail("timed out waiting for jobs", code=1)


@jobs_app.command("retry-stalled")
def retry_stalled_cmd(after: float = typer.Option(
        None, help="seconds without a worker heartbeat (default: three heartbeats, WATTLINE_WORKER_HEARTBEAT_S)")) -> None:
    """Requeue now the running jobs of workers that stopped (the workers also do it every minute)."""
    eng = _app()
    from wattline.jobs.engine_tasks import retry_stalled_jobs, stalled_after_s

    async def run() -> list[int]:
        async with eng.open_async():
            return await retry_stalled_jobs(eng, stalled_after_s() if after is None else after)

    ids = asyncio.run(run())
    typer.echo(f"requeued {len(ids)} job(s)" + (f": {' '.join(map(str, ids))}" if ids else ""))

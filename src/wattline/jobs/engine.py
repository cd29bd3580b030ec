"""The distributed job engine (procrastinate on PostgreSQL), used when
``Settings.jobs_url`` (WATTLINE_JOBS_URL) is set; unset, jobs run in-process as before.
The URL is never logged: it may carry a password."""

from __future__ import annotations

import procrastinate
import procrastinate.exceptions

from wattline import logs
from wattline.config import get_settings

log = logs.get("wattline.jobs.engine")


def conninfo(url: str) -> str:
    """libpq conninfo from ``postgresql://`` or SQLAlchemy ``postgresql+psycopg://``."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.startswith("postgres"):
        raise ValueError("WATTLINE_JOBS_URL must be a postgresql:// URL")
    return "postgresql://" + rest


def connector(url: str) -> procrastinate.PsycopgConnector:
    # one connection at open, not the pool's default four: the API and the CLI open one
    # per defer; a worker's pool still grows to its concurrency. A queue that does not
    # answer fails an API call in 10 s, not the pool's default 30.
    return procrastinate.PsycopgConnector(conninfo=conninfo(url), min_size=1, max_size=10, timeout=10)


def build_app(url: str | None = None) -> procrastinate.App:
    url = url or get_settings().jobs_url
    if not url:
        raise RuntimeError("no job engine configured (WATTLINE_JOBS_URL is unset)")
    app = procrastinate.App(connector=connector(url), import_paths=["wattline.jobs.engine_tasks"])
    return app


def engine_app(url: str | None = None) -> procrastinate.App:
    """An app on the queue at ``url`` (default: the process's setting) to defer to and
    read from. The API builds it from its context's settings, which a test may set
    without the environment the task module was imported with: then a plain app (its
    tasks are bound to the module's app), deferring by task name."""
    from wattline.jobs import engine_tasks

    url = url or get_settings().jobs_url
    if not url:
        raise RuntimeError("no job engine configured (WATTLINE_JOBS_URL is unset)")
    if url == engine_tasks.APP_URL:
        return engine_tasks.app
    return procrastinate.App(connector=connector(url))


def task_names() -> set[str]:
    from wattline.jobs import engine_tasks

    return set(engine_tasks.app.tasks)


async def apply_schema(app: procrastinate.App) -> None:
    """procrastinate's schema, once: applying it twice fails, so check first; and our
    tables of the runs' errors and results (procrastinate keeps neither)."""
    from wattline.store import engine_jobs_repo

    # workers starting together race on procrastinate's schema (one transaction: a loser
    # fails on the winner's committed objects and finds them in place the second time
    # round); our own tables go in under a lock (engine_jobs_repo.ensure_own_tables)
    for attempt in range(3):
        try:
            if not await engine_jobs_repo.schema_present(app.connector):
                await app.schema_manager.apply_schema_async()
            await engine_jobs_repo.ensure_own_tables(app.connector)
            return
        except procrastinate.exceptions.ConnectorException:
            if attempt == 2:
                raise


async def defer(task_name: str, *, lock: str | None = None, queueing_lock: str | None = None,
                url: str | None = None, **kwargs) -> int:
    """Defer ``task_name`` (an engine_tasks task) and return its job id. Raises
    procrastinate's ``AlreadyEnqueued`` when the queueing lock is held by a queued job."""
    app = engine_app(url)
    async with app.open_async():
        await apply_schema(app)
        if task_name not in task_names():
            raise KeyError(f"no engine task {task_name!r}")
        from wattline.jobs import engine_tasks

        queue = engine_tasks.app.tasks[task_name].queue  # a plain app does not know the task's own queue
        return await app.configure_task(task_name, lock=lock, queueing_lock=queueing_lock,
                                        queue=queue).defer_async(**kwargs)


async def record_outcome(call_next, context: procrastinate.JobContext, worker) -> object:
    """Worker middleware: a run that raises leaves its error (type and message, no
    traceback: that is in the worker's log) beside the job, for the jobs page; a run that
    returns a dict leaves it as the job's result (``GET /api/jobs/engine-{id}``); what it
    reports meanwhile is kept as the job's progress (engine_progress)."""
    from wattline.jobs.engine_progress import Progress

    progress = Progress(context.app.connector, context.job.id)
    try:
        with progress.bound():
            result = await call_next()
    except Exception as exc:
        from wattline.store import engine_jobs_repo

        await progress.close()
        try:
            await engine_jobs_repo.record_error(context.app.connector, context.job.id,
                                                f"{type(exc).__name__}: {exc}"[:2000])
        except Exception:  # noqa: BLE001  (the queue itself failing: the job's own state still says failed)
            log.warning("engine.record_error_failed", job_id=context.job.id)
        raise
    except BaseException:  # cancelled (aborted, or the worker stopping): no write after it
        progress.cancel()
        raise
    await progress.close()
    if isinstance(result, dict):
        import json

        from wattline.store import engine_jobs_repo

        try:
            await engine_jobs_repo.record_result(context.app.connector, context.job.id,
                                                 json.dumps(result, default=str))
        except Exception:  # noqa: BLE001  (the work is done and its job succeeds; only the result is missing)
            log.warning("engine.record_result_failed", job_id=context.job.id)
    return result

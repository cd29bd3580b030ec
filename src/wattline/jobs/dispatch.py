"""In-process or on the engine: the one place that decides. With ``WATTLINE_JOBS_URL``
set, minute polling, the points' daily catch-up and the weekly cleanup are periodic
tasks of the workers (procrastinate runs each once per period however many are up),
and the CLI's backfill, sync and poll defer a job instead of running it; unset, all of
it runs in this process as before."""

from __future__ import annotations

import asyncio

from wattline.config import Settings, get_settings


def engine_configured(settings: Settings | None = None) -> bool:
    return bool((settings or get_settings()).jobs_url)


def defer_now(task_name: str, *, lock: str | None = None, queueing_lock: str | None = None, **kwargs) -> int | None:
    """Defer a task from synchronous code; None when its queueing lock says the same job
    is already queued."""
    from procrastinate.exceptions import AlreadyEnqueued

    from wattline.jobs.engine import defer

    try:
        return asyncio.run(defer(task_name, lock=lock, queueing_lock=queueing_lock, **kwargs))
    except AlreadyEnqueued:
        return None

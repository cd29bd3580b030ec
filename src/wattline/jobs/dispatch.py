"""In-process or on the engine: the one place that decides. With ``WATTLINE_JOBS_URL``
set, minute polling, the points' daily catch-up, the weekly cleanup and the
organizations' local-time daily sync and nightly reconciliation are periodic tasks of
the workers (procrastinate runs each once per period however many are up), and the
CLI's and the API's backfill, sync, poll, cron, recalculation and repricing defer a
job instead of running it; unset, all of it runs in this process as before."""

from __future__ import annotations

import asyncio

from wattline.config import Settings, get_settings


def engine_configured(settings: Settings | None = None) -> bool:
    return bool((settings or get_settings()).jobs_url)


async def defer_async(settings: Settings | None, task_name: str, *, lock: str | None = None,
                      queueing_lock: str | None = None, **kwargs) -> int | None:
    """Defer a task on the engine of ``settings``; None when its queueing lock says the
    same job is already queued."""
    from procrastinate.exceptions import AlreadyEnqueued

    from wattline.jobs.engine import defer

    url = (settings or get_settings()).jobs_url
    try:
        return await defer(task_name, lock=lock, queueing_lock=queueing_lock, url=url, **kwargs)
    except AlreadyEnqueued:
        return None


def defer_now(task_name: str, *, lock: str | None = None, queueing_lock: str | None = None,
              settings: Settings | None = None, **kwargs) -> int | None:
    """:func:`defer_async` from synchronous code (not from a running event loop)."""
    return asyncio.run(defer_async(settings, task_name, lock=lock, queueing_lock=queueing_lock, **kwargs))


async def engine_query(settings: Settings, query):
    """``await query(connector)`` on the engine's queue database (the API's reads);
    None while its schema is not applied (no worker, defer or db upgrade yet)."""
    from wattline.jobs.engine import engine_app
    from wattline.store import engine_jobs_repo

    app = engine_app(settings.jobs_url)
    async with app.open_async():
        if not await engine_jobs_repo.own_tables_present(app.connector):
            return None
        return await query(app.connector)

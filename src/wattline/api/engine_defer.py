"""The API's side of the job engine: with ``WATTLINE_JOBS_URL`` set, a route that
starts work defers it to the workers and answers 202 with the engine's job id
(``deferred: true``, ``engineJobId``); unset, the route runs it in this process as before."""

from __future__ import annotations

from fastapi import Request

from wattline.api.deps import ctx
from wattline.jobs.dispatch import defer_async, engine_configured


def engine_on(request: Request) -> bool:
    return engine_configured(ctx(request).settings)


async def defer(request: Request, task: str, *, lock: str, queueing_lock: str | None = None, **kwargs) -> int | None:
    """The engine's job id; None when the same job (its queueing lock) is already queued."""
    return await defer_async(ctx(request).settings, task, lock=lock, queueing_lock=queueing_lock, **kwargs)


def engine_job_id(job_id: int) -> str:
    return f"engine-{job_id}"


def engine_job_url(job_id: int) -> str:
    return f"/api/admin/engine-jobs/{job_id}"

"""The API's side of the job engine: with ``WATTLINE_JOBS_URL`` set, a route that
starts work defers it to the workers and answers 202 with the engine's job id
(``deferred: true``, ``engineJobId``) and its URL, ``/api/jobs/engine-{id}`` (status,
progress, result, error, as for an in-process job); unset, the route runs it in this process as before."""

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
    """Where a client follows a deferred job, as it follows an in-process one."""
    return f"/api/jobs/{engine_job_id(job_id)}"


def parse_engine_job_id(job_id: str) -> int | None:
    """``engine-{n}`` -> n; None for any other id (an in-process job's)."""
    prefix, _, number = job_id.partition("-")
    if prefix != "engine" or not number.isdigit() or len(number) > 18:
        return None
    return int(number)


async def engine_job(request: Request, job_id: int) -> dict | None:
    """The engine's job row with its error, progress and result; None without the engine or the job."""
    from wattline.jobs.dispatch import engine_query
    from wattline.store import engine_jobs_repo

    settings = ctx(request).settings
    if not settings.jobs_url:
        return None
    return await engine_query(settings, lambda conn: engine_jobs_repo.get_job(conn, job_id))


# procrastinate's states in the four of /api/jobs (a cancelled or aborted job did not succeed)
_JOB_STATUS = {"todo": "queued", "doing": "running", "aborting": "running", "succeeded": "succeeded",
               "failed": "failed", "cancelled": "failed", "aborted": "failed"}


def as_job_row(row: dict) -> dict:
    """An engine job in the shape of an in-process job row (jobs_repo)."""
    import json

    return {"id": engine_job_id(row["id"]), "kind": row["task_name"], "status": _JOB_STATUS[row["status"]],
            "params": json.loads(row["args"]) if row["args"] else None,
            "progress": json.loads(row["progress"]) if row.get("progress") else None,
            "result": json.loads(row["result"]) if row.get("result") else None,
            "error": row["error"] if row["status"] != "succeeded" else None,
            "created_at": row.get("created_at"), "updated_at": row.get("updated_at")}

"""``GET /api/admin/engine-jobs[?status=failed]`` (admin): the job engine's jobs, newest
first, so a job that kept failing is visible over the API as in ``wattline jobs list``.
Without ``WATTLINE_JOBS_URL`` the answer says the engine is not configured (jobs then
run in-process and are on ``/api/jobs``)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel

from wattline.api import engine_defer
from wattline.api import schemas as S
from wattline.api.deps import MAX_ID, ctx
from wattline.security.errors import ApiError
from wattline.security.deps import require_role

router = APIRouter(tags=["jobs"], responses=S.errors(401, 403))

EngineStatus = Literal["todo", "doing", "succeeded", "failed", "cancelled", "aborting", "aborted"]


class EngineJobOut(BaseModel):
    id: int
    task: str
    status: str
    attempts: int
    lock: str | None
    queueingLock: str | None
    args: str
    error: str | None = None
    result: dict | None = None  # a succeeded job's (one of GET /api/admin/engine-jobs/{id})


class EngineJobsOut(BaseModel):
    configured: bool
    jobs: list[EngineJobOut]


@router.get("/api/admin/engine-jobs", dependencies=[Depends(require_role("admin"))], responses=S.errors(400))
async def engine_jobs(request: Request,
                      status: Annotated[EngineStatus | None, Query(description="only jobs in this state")] = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> EngineJobsOut:
    settings = ctx(request).settings
    if not settings.jobs_url:
        return EngineJobsOut(configured=False, jobs=[])
    from wattline.jobs.engine import build_app
    from wattline.store import engine_jobs_repo

    engine = build_app(settings.jobs_url)
    async with engine.open_async():
        rows = await engine_jobs_repo.list_jobs(engine.connector, status, limit)
    return EngineJobsOut(configured=True, jobs=[EngineJobOut(
        id=r["id"], task=r["task_name"], status=r["status"], attempts=r["attempts"], lock=r["lock"],
        queueingLock=r["queueing_lock"], args=r["args"]) for r in rows])


@router.get("/api/admin/engine-jobs/{job_id}", dependencies=[Depends(require_role("admin"))],
            responses=S.errors(400, 404))
async def engine_job(request: Request, job_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> EngineJobOut:
    """One engine job with its locks, attempts, last error and result (a deferring
    route's URL, ``/api/jobs/engine-{id}``, shows it as any job)."""
    row = await engine_defer.engine_job(request, job_id)
    if row is None:
        raise ApiError(404, "not_found", f"no engine job {job_id}", {"job_id": job_id})
    return EngineJobOut(id=row["id"], task=row["task_name"], status=row["status"], attempts=row["attempts"],
                        lock=row["lock"], queueingLock=row["queueing_lock"], args=row["args"], error=row["error"],
                        result=engine_defer.as_job_row(row)["result"])

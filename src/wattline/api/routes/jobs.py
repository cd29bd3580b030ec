"""Job status: what a 202 points at."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from wattline.api import engine_defer
from wattline.api import schemas as S
from wattline.security.deps import require_role
from wattline.security.errors import ApiError
from wattline.store import jobs_repo, plant_queries

router = APIRouter(prefix="/api/jobs", tags=["jobs"], dependencies=[Depends(require_role("viewer"))],
                   responses=S.errors(401, 403))


def _public(row: dict) -> S.Job:
    return S.Job(id=row["id"], kind=row["kind"], status=row["status"], params=row["params"],
                 progress=row["progress"], result=row["result"], error=row["error"],
                 createdAt=plant_queries.iso_utc(row["created_at"]),
                 updatedAt=plant_queries.iso_utc(row["updated_at"]))


@router.get("", responses=S.errors(400))
def recent_jobs(request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> S.JobList:
    """The most recent jobs (backfills, syncs started over the API), newest first."""
    return S.JobList(jobs=[_public(r) for r in jobs_repo.recent(request.app.state.ctx.dbs.telemetry, limit)])


@router.get("/{job_id}", responses=S.errors(400, 404))
async def job(request: Request, job_id: Annotated[str, Path(max_length=64)]) -> S.Job:
    """One job: status, progress while it runs, result or error when it ends. An
    ``engine-{n}`` id is a job deferred to the workers (``WATTLINE_JOBS_URL``)."""
    engine_id = engine_defer.parse_engine_job_id(job_id)
    if engine_id is not None:
        row = await engine_defer.engine_job(request, engine_id)
        if row is None:
            raise ApiError(404, "not_found", f"no job {job_id}")
        return _public(engine_defer.as_job_row(row))
    row = await asyncio.to_thread(request.app.state.runner.get, job_id)
    if row is None:
        raise ApiError(404, "not_found", f"no job {job_id}")
    return _public(row)

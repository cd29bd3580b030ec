"""Job status: what a 202 points at."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select

from wattline.security.deps import require_role
from wattline.security.errors import ApiError
from wattline.store import plant_queries
from wattline.store.tables import jobs

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


def _public(row) -> dict:
    return {"id": row["id"], "kind": row["kind"], "status": row["status"], "params": row["params"],
            "progress": row["progress"], "result": row["result"], "error": row["error"],
            "createdAt": plant_queries.iso_utc(row["created_at"]), "updatedAt": plant_queries.iso_utc(row["updated_at"])}


@router.get("", dependencies=[Depends(require_role("viewer"))])
def recent_jobs(request: Request, limit: int = Query(50, ge=1, le=500)) -> dict:
    """The most recent jobs (backfills, syncs started over the API), newest first."""
    with request.app.state.ctx.dbs.telemetry.connect() as conn:
        rows = conn.execute(select(jobs).order_by(jobs.c.created_at.desc()).limit(limit)).mappings().all()
    return {"jobs": [_public(r) for r in rows]}


@router.get("/{job_id}", dependencies=[Depends(require_role("viewer"))])
def job(request: Request, job_id: str) -> dict:
    row = request.app.state.runner.get(job_id)
    if row is None:
        raise ApiError(404, "not_found", f"no job {job_id}")
    return _public(row)

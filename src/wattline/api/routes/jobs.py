"""Job status: what a 202 points at."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from wattline.security.deps import require_role
from wattline.security.errors import ApiError

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


@router.get("/{job_id}", dependencies=[Depends(require_role("viewer"))])
def job(request: Request, job_id: str) -> dict:
    row = request.app.state.runner.get(job_id)
    if row is None:
        raise ApiError(404, "not_found", f"no job {job_id}")
    return {"id": row["id"], "kind": row["kind"], "status": row["status"], "params": row["params"],
            "progress": row["progress"], "result": row["result"], "error": row["error"]}

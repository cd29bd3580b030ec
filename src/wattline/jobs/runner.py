"""Long work requested over the API runs as a job: a row in ``jobs`` with status,
progress and result, executed as a task on the server's event loop."""

from __future__ import annotations

from wattline import clock

import asyncio
import uuid
from typing import Any, Awaitable, Callable

from sqlalchemy import insert, select, update

from wattline import logs
from wattline.context import AppContext
from wattline.store.tables import jobs

log = logs.get("wattline.jobs")


class JobRunner:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self._tasks: set[asyncio.Task] = set()
        self._fail_interrupted()
        self._running: dict[tuple, str] = {}  # (kind, id) -> job id, to refuse duplicates

    def _fail_interrupted(self) -> None:
        """Jobs left queued or running by a previous process will never finish: say so.
        (Their work is resumable: a new backfill continues from its checkpoint.)"""
        with self.ctx.dbs.telemetry.begin() as conn:
            n = conn.execute(update(jobs).where(jobs.c.status.in_(("queued", "running"))).values(
                status="failed", error="interrupted: the server stopped before the job finished",
                updated_at=clock.now_dt())).rowcount
        if n:
            log.warning("jobs.interrupted", count=n)

    def running(self, kind: str, key_id: int) -> bool:
        return (kind, key_id) in self._running

    def submit(self, kind: str, params: dict, work: Callable[[Callable[[dict], None]], Awaitable[dict]],
               *, key: tuple | None = None) -> str:
        """Start ``work(report_progress)``; returns the job id at once."""
        job_id = str(uuid.uuid4())
        now = clock.now_dt()
        with self.ctx.dbs.telemetry.begin() as conn:
            conn.execute(insert(jobs).values(id=job_id, kind=kind, params=params, status="queued",
                                             progress={}, created_at=now, updated_at=now))
        task = asyncio.get_running_loop().create_task(self._run(job_id, work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if key is not None:
            self._running[key] = job_id
            task.add_done_callback(lambda _t: self._running.pop(key, None))
        return job_id

    async def _run(self, job_id: str, work) -> None:
        self._set(job_id, status="running")
        try:
            result = await work(lambda progress: self._set(job_id, progress=progress))
            self._set(job_id, status="succeeded", result=result)
        except Exception as exc:  # noqa: BLE001 - the job row reports it
            log.exception("job.failed", job_id=job_id)
            self._set(job_id, status="failed", error=f"{type(exc).__name__}: {exc}")

    def _set(self, job_id: str, **values: Any) -> None:
        values["updated_at"] = clock.now_dt()
        with self.ctx.dbs.telemetry.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))

    def get(self, job_id: str) -> dict | None:
        with self.ctx.dbs.telemetry.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        return dict(row) if row else None

    async def wait_all(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

"""Long work requested over the API runs as a job: a row in ``jobs`` with status,
progress and result, executed as a task on the server's event loop.

The row, not the process, knows what is running. Each runner has an ``owner``
(hostname:pid:random token); a job row it starts carries that owner and a lease that
the runner renews every ``RENEW_S`` while the work runs. A server that starts fails
only the jobs whose lease has expired (their process stopped renewing: it died or
hung), never the live jobs of another process. "Is a backfill of plant 7 running?"
is asked of the database (``job_key``, unique among live jobs), so it holds across
processes. Every database call runs in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import uuid
from datetime import timedelta
from typing import Any, Awaitable, Callable

from wattline import clock, logs
from wattline.context import AppContext
from wattline.store import jobs_repo

log = logs.get("wattline.jobs")

# A lease of 30 s renewed every 10 s: a worker may miss two renewals (a slow
# database, a busy loop) before another server may consider its jobs dead, and a
# crashed server's jobs are failed by the next start at most 30 s after the crash.
LEASE_S = 30.0
RENEW_S = 10.0
EXPIRED_REASON = ("interrupted: its worker ({owner}) stopped renewing the lease, which expired at "
                  "{lease_expires_at} (UTC); the server stopped or hung before the job finished")

Work = Callable[[Callable[[dict], None]], Awaitable[dict]]


def tee_progress(work: Work, also: Callable[[dict], None] | None) -> Work:
    """``work`` whose progress also goes to ``also`` (an engine job's, beside its job row)."""
    if also is None:
        return work

    async def teed(report: Callable[[dict], None]) -> dict:
        def both(value: dict) -> None:
            report(value)
            also(value)

        return await work(both)

    return teed


class JobAlreadyRunning(Exception):
    """A live job with the same key exists, in this process or another."""


def process_owner() -> str:
    """hostname:pid:token; the token tells apart two runners of one process (and a reused pid)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def job_key(key: tuple) -> str:
    return ":".join(str(k) for k in key)


class JobRunner:
    def __init__(self, ctx: AppContext, *, owner: str | None = None, lease_s: float = LEASE_S,
                 renew_s: float = RENEW_S):
        if not 0 < renew_s < lease_s:
            raise ValueError("the lease must be renewed before it expires: 0 < renew_s < lease_s")
        self.ctx = ctx
        self.owner = owner or process_owner()
        self.lease_s = lease_s
        self.renew_s = renew_s
        # strong references to this runner's tasks: the event loop keeps only weak ones
        self._tasks: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def _db(self):
        return self.ctx.dbs.telemetry

    def _lease_until(self):
        return clock.now_dt() + timedelta(seconds=self.lease_s)

    # ---------------------------------------------------------------- startup

    def fail_expired(self) -> int:
        """Fail the queued or running jobs whose lease has expired (blocking; see :meth:`recover`).
        Their work is resumable: a new backfill continues from its checkpoint."""
        gone = jobs_repo.fail_expired(self._db, clock.now_dt(), EXPIRED_REASON)
        if gone:
            log.warning("jobs.interrupted", count=len(gone), owners=sorted({str(g["owner"]) for g in gone}))
        return len(gone)

    async def recover(self) -> int:
        """At server start: fail the jobs of dead workers, off the event loop."""
        self._loop = asyncio.get_running_loop()
        return await asyncio.to_thread(self.fail_expired)

    # ---------------------------------------------------------------- submitting

    def running(self, kind: str, key_id: int) -> bool:
        """Whether a live job with key (kind, key_id) exists in any process (blocking)."""
        return jobs_repo.key_is_live(self._db, job_key((kind, key_id)), clock.now_dt())

    def submit(self, kind: str, params: dict, work: Work, *, key: tuple | None = None) -> str:
        """Record a queued job and start ``work(report_progress)`` on the event loop; returns
        the job id at once. Blocking (one insert): from async code use :meth:`start`; from
        a worker thread it starts the work on the loop of the last :meth:`recover` or
        :meth:`start`. Raises :class:`JobAlreadyRunning` if ``key`` is held by a live job."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called from a worker thread
            loop = self._loop
        if loop is None:
            raise RuntimeError("JobRunner.submit from a thread needs the runner's loop: await recover() first")
        return self._submit(loop, kind, params, work, key)

    async def start(self, kind: str, params: dict, work: Work, *, key: tuple | None = None) -> str:
        """:meth:`submit` with its database write in a worker thread."""
        self._loop = asyncio.get_running_loop()
        return await asyncio.to_thread(self._submit, self._loop, kind, params, work, key)

    def _submit(self, loop: asyncio.AbstractEventLoop, kind: str, params: dict, work: Work,
                key: tuple | None) -> str:
        job_id = str(uuid.uuid4())
        try:
            jobs_repo.create(self._db, job_id=job_id, kind=kind, params=params,
                             key=None if key is None else job_key(key), owner=self.owner,
                             now=clock.now_dt(), lease_until=self._lease_until(), expired_reason=EXPIRED_REASON)
        except jobs_repo.JobKeyTaken:
            raise JobAlreadyRunning(job_key(key)) from None
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._spawn(job_id, work)
        else:
            loop.call_soon_threadsafe(self._spawn, job_id, work)
        return job_id

    def _spawn(self, job_id: str, work: Work) -> None:
        task = asyncio.get_running_loop().create_task(self._run(job_id, work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------- running

    async def _run(self, job_id: str, work: Work) -> None:
        progress = _LatestWriter(lambda p: self._set(job_id, progress=p))
        renewing = asyncio.create_task(self._keep_lease(job_id))
        try:
            await asyncio.to_thread(self._set, job_id, status="running")
            try:
                result = await work(progress.report)
            except Exception as exc:  # noqa: BLE001 - the job row reports it
                log.exception("job.failed", job_id=job_id)
                await progress.flush()
                await asyncio.to_thread(self._set, job_id, status="failed", error=f"{type(exc).__name__}: {exc}")
            else:
                await progress.flush()
                await asyncio.to_thread(self._set, job_id, status="succeeded", result=result)
        finally:
            renewing.cancel()

    async def _keep_lease(self, job_id: str) -> None:
        """Renew the job's lease every ``renew_s`` until cancelled (when the job ends)."""
        while True:
            await asyncio.sleep(self.renew_s)
            try:
                held = await asyncio.to_thread(jobs_repo.renew_lease, self._db, job_id, self.owner,
                                               clock.now_dt(), self._lease_until())
            except Exception:  # noqa: BLE001 - a failed renewal is retried at the next tick
                log.exception("job.lease_renewal_failed", job_id=job_id)
                continue
            if not held:
                # another server judged this worker dead (it missed renewals) and failed the row
                log.warning("job.lease_lost", job_id=job_id, owner=self.owner)
                return

    def _set(self, job_id: str, **values: Any) -> None:
        values["updated_at"] = clock.now_dt()
        if not jobs_repo.update_owned(self._db, job_id, self.owner, **values):
            log.warning("job.not_owned", job_id=job_id, owner=self.owner)

    def get(self, job_id: str) -> dict | None:
        """The job row (blocking)."""
        return jobs_repo.get(self._db, job_id)

    async def wait_all(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


_NOTHING = object()


class _LatestWriter:
    """Progress is reported (on the event loop) faster than rows are written: keep only
    the newest report and write it from a worker thread, one write at a time, in order."""

    def __init__(self, write: Callable[[Any], None]):
        self._write = write
        self._pending: Any = _NOTHING
        self._task: asyncio.Task | None = None

    def report(self, value: Any) -> None:
        self._pending = value
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._pending is not _NOTHING:
            value, self._pending = self._pending, _NOTHING
            try:
                await asyncio.to_thread(self._write, value)
            except Exception:  # noqa: BLE001 - progress is informative; the job goes on
                log.exception("job.progress_write_failed")

    async def flush(self) -> None:
        """Wait until the newest report is written (before the final status is)."""
        if self._task is not None:
            await self._task

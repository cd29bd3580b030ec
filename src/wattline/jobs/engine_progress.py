"""Progress of a running engine job, shown at ``/api/jobs/engine-{id}`` and on the jobs
page as an in-process job's is. A task reports as an in-process job's work does
(``report(dict)``); the worker middleware (engine.record_outcome) binds a
:class:`Progress` to the job it runs, which keeps the newest report beside the job
(table ``wattline_engine_progress``), written at most once every ``EVERY_S``: a backfill
reports after every chunk, the queue needs no row write for each. Progress is
informative: a report or a write that fails is logged, and the job goes on."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
from collections.abc import Callable, Iterator
from typing import Any

from wattline import logs
from wattline.store import engine_jobs_repo

log = logs.get("wattline.jobs.engine")
EVERY_S = 1.0
_NOTHING = object()
# the job the current task runs (a context variable: each job runs in its own task)
_current: contextvars.ContextVar[Progress | None] = contextvars.ContextVar("engine_progress", default=None)


def report(value: dict) -> None:
    """Report the progress of the engine job being run; outside one, nothing."""
    progress = _current.get()
    if progress is not None:
        progress.report(value)


def reporter() -> Callable[[dict], None]:
    """:func:`report` bound now to the job being run, for work that runs in a task of its own."""
    progress = _current.get()
    return progress.report if progress is not None else _ignore


def _ignore(value: dict) -> None:
    pass


class Progress:
    """The newest report of one job, written by one task at a time, in order."""

    def __init__(self, connector, job_id: int, every_s: float = EVERY_S):
        self.connector, self.job_id, self.every_s = connector, job_id, every_s
        self._loop = asyncio.get_running_loop()
        self._pending: Any = _NOTHING
        self._task: asyncio.Task | None = None
        self._written_at = float("-inf")
        self._closing = asyncio.Event()

    @contextlib.contextmanager
    def bound(self) -> Iterator[None]:
        """:func:`report` goes to this job meanwhile (in this task and what it starts)."""
        token = _current.set(self)
        try:
            yield
        finally:
            _current.reset(token)

    def report(self, value: dict) -> None:
        try:
            try:
                on_loop = asyncio.get_running_loop() is self._loop
            except RuntimeError:
                on_loop = False
            if not on_loop:  # from a worker thread (the job's to_thread work)
                self._loop.call_soon_threadsafe(self.report, value)
                return
            self._pending = value
            if self._task is None or self._task.done():
                self._task = self._loop.create_task(self._drain())
        except Exception:  # noqa: BLE001 - progress is informative: never the job's failure
            log.warning("engine.progress_report_failed", job_id=self.job_id)

    async def _drain(self) -> None:
        while self._pending is not _NOTHING:
            wait = self._written_at + self.every_s - self._loop.time()
            if wait > 0 and not self._closing.is_set():  # newer reports replace the pending one meanwhile
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), wait)
            value, self._pending = self._pending, _NOTHING
            self._written_at = self._loop.time()
            try:
                await engine_jobs_repo.record_progress(self.connector, self.job_id, json.dumps(value, default=str))
            except Exception:  # noqa: BLE001 - the queue busy or down: the next report tries again
                log.warning("engine.progress_write_failed", job_id=self.job_id)

    async def close(self) -> None:
        """The newest report written at once (not a second later), before the job's outcome is."""
        self._closing.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task

    def cancel(self) -> None:
        """The job was cancelled (aborted, or the worker stopped): nothing written after it."""
        if self._task is not None:
            self._task.cancel()


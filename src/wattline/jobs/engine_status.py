"""What the job engine's queue holds, for the jobs page and ``/metrics``: from
synchronous code (a page or the metrics route in a worker thread). A queue that does
not answer is logged and shown as nothing, never a failed page."""

from __future__ import annotations

import asyncio

from wattline import logs, metrics
from wattline.config import Settings
from wattline.jobs.dispatch import engine_configured, engine_query

log = logs.get("wattline.jobs.engine")

GAUGE_STATUSES = ("todo", "doing", "succeeded", "failed", "cancelled", "aborted")


def _query(settings: Settings, fn):
    try:
        return asyncio.run(engine_query(settings, fn))
    except Exception as exc:  # noqa: BLE001 - the queue down: the page and the scrape go on
        log.warning("engine.status_unavailable", error=type(exc).__name__)
        return None


def failed_jobs(settings: Settings, limit: int = 50) -> list[dict] | None:
    """The failed engine jobs (newest first); None without the engine or when it does not answer."""
    from wattline.store import engine_jobs_repo

    if not engine_configured(settings):
        return None
    return _query(settings, lambda conn: engine_jobs_repo.failed_jobs(conn, limit))


def running_jobs(settings: Settings, limit: int = 50) -> list[dict] | None:
    """The running engine jobs (newest first) with their latest progress (a dict or None);
    None without the engine or when it does not answer."""
    import json

    from wattline.store import engine_jobs_repo

    if not engine_configured(settings):
        return None
    rows = _query(settings, lambda conn: engine_jobs_repo.running_jobs(conn, limit))
    if rows is None:
        return None
    return [dict(r, progress=json.loads(r["progress"]) if r["progress"] else None) for r in rows]


def export_gauges(settings: Settings) -> None:
    """``wattline_engine_jobs{status}``: the queue's jobs by status at this scrape."""
    from wattline.store import engine_jobs_repo

    if not engine_configured(settings):
        return
    counts = _query(settings, engine_jobs_repo.count_by_status)
    if counts is None:
        return
    for status in sorted(set(GAUGE_STATUSES) | set(counts)):
        metrics.ENGINE_JOBS.labels(status).set(counts.get(status, 0))

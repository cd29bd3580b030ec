"""Read side of the ``jobs`` table for the API: the most recent jobs."""

from __future__ import annotations

from sqlalchemy import Engine, select

from wattline.store.tables import jobs


def recent_jobs(telemetry: Engine, limit: int) -> list[dict]:
    """The ``limit`` newest job rows (all columns), newest first."""
    with telemetry.connect() as conn:
        rows = conn.execute(select(jobs).order_by(jobs.c.created_at.desc()).limit(limit)).mappings().all()
    return [dict(r) for r in rows]

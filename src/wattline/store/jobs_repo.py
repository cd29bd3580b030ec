"""Job rows (table ``jobs``): what the job runner reads and writes.

Every call is blocking; async callers run them in a worker thread. A row is
claimed by its ``owner`` (one process) until ``lease_expires_at``; writes by a
worker are conditional on still being the owner.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from wattline.store.engines import write_transaction
from wattline.store.tables import jobs

LIVE = ("queued", "running")


class JobKeyTaken(Exception):
    """A live job with the same key exists (in this or another process)."""


def _expired(now: datetime):
    """Live rows whose lease is over (or that never had one: rows from before leases)."""
    return and_(jobs.c.status.in_(LIVE),
                or_(jobs.c.lease_expires_at.is_(None), jobs.c.lease_expires_at < now))


def create(telemetry: Engine, *, job_id: str, kind: str, params: dict, key: str | None, owner: str,
           now: datetime, lease_until: datetime, expired_reason: str) -> None:
    """Insert a queued job owned by ``owner``. With ``key``, a dead holder of the key
    (lease expired) is failed first; a live one raises :class:`JobKeyTaken`."""
    try:
        # read-then-write: on SQLite the write lock at BEGIN, so two runners queue instead
        # of one failing to upgrade its read ('database is locked')
        with write_transaction(telemetry) as conn:
            if key is not None:
                _fail_expired(conn, now, expired_reason, jobs.c.job_key == key)
            conn.execute(insert(jobs).values(
                id=job_id, kind=kind, params=params, status="queued", progress={}, created_at=now,
                updated_at=now, owner=owner, lease_expires_at=lease_until, job_key=key))
    except IntegrityError:
        raise JobKeyTaken(key) from None


def update_owned(telemetry: Engine, job_id: str, owner: str, **values: Any) -> bool:
    """Set columns of a job this owner holds; False if the row is not (or no longer) its."""
    with telemetry.begin() as conn:
        return conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.owner == owner)
                            .values(**values)).rowcount > 0


def renew_lease(telemetry: Engine, job_id: str, owner: str, now: datetime, lease_until: datetime) -> bool:
    """Extend the lease of a live job this owner holds; False if it lost the job."""
    with telemetry.begin() as conn:
        return conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.owner == owner,
                                               jobs.c.status.in_(LIVE))
                            .values(lease_expires_at=lease_until, updated_at=now)).rowcount > 0


def fail_expired(telemetry: Engine, now: datetime, reason: str) -> list[dict]:
    """Mark failed every live job whose lease has expired, with ``reason`` formatted with
    the row's ``owner`` and ``lease_expires_at``; returns those rows (id, owner, lease)."""
    with write_transaction(telemetry) as conn:  # read-then-write, see create
        return _fail_expired(conn, now, reason)


def _fail_expired(conn: Connection, now: datetime, reason: str, *where) -> list[dict]:
    gone = [dict(g) for g in conn.execute(
        select(jobs.c.id, jobs.c.owner, jobs.c.lease_expires_at).where(_expired(now), *where)).mappings()]
    for g in gone:
        conn.execute(update(jobs).where(jobs.c.id == g["id"], _expired(now)).values(
            status="failed", updated_at=now,
            error=reason.format(owner=g["owner"] or "unknown", lease_expires_at=g["lease_expires_at"])))
    return gone


def key_is_live(telemetry: Engine, key: str, now: datetime) -> bool:
    """Whether a queued or running job with this key holds an unexpired lease."""
    with telemetry.connect() as conn:
        return conn.execute(select(jobs.c.id).where(
            jobs.c.job_key == key, jobs.c.status.in_(LIVE), jobs.c.lease_expires_at >= now).limit(1)
        ).first() is not None


def get(telemetry: Engine, job_id: str) -> dict | None:
    with telemetry.connect() as conn:
        row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
    return dict(row) if row else None


def recent(telemetry: Engine, limit: int) -> list[dict]:
    """The newest jobs first."""
    with telemetry.connect() as conn:
        rows = conn.execute(select(jobs).order_by(jobs.c.created_at.desc()).limit(limit)).mappings().all()
    return [dict(r) for r in rows]

"""Rows of ``vendor_sync_logs`` (seed 000): one per vendor call and one per job run."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy import Connection, Engine, func, insert, select

from wattline.store import bulk
from wattline.store.tables import vendor_sync_logs

REJECTED_PREFIX = "rejected record"  # error_message of a record skipped as corrupt, not a call
_PLAIN_COLUMNS = ("vendor_id", "plant_id", "sync_type", "status", "error_message", "records_processed",
                  "started_at", "completed_at")
_COLUMNS = (*_PLAIN_COLUMNS, "metadata")  # metadata: JSON, sent as its text in a COPY
_DEFAULTS = dict(vendor_id=None, plant_id=None, error_message=None, records_processed=0, completed_at=None,
                 metadata=None)


def add(telemetry: Engine, rows: list[dict]) -> None:
    """Insert log rows (column name -> value), in one transaction."""
    if rows:
        with telemetry.begin() as conn:
            add_in(conn, rows)


def add_in(conn: Connection, rows: list[dict]) -> None:
    """Insert log rows in the caller's transaction. On PostgreSQL one COPY: SQLAlchemy's
    executemany of a poll batch's call rows was a tenth of the batch's writing time."""
    if not rows:
        return
    full = [{**_DEFAULTS, **r} for r in rows]  # one shape for every row
    if conn.dialect.name != "postgresql":
        conn.execute(insert(vendor_sync_logs), full)
        return
    bulk.insert_new(conn, vendor_sync_logs, _COLUMNS, [
        (*(r[k] for k in _PLAIN_COLUMNS), None if r["metadata"] is None else json.dumps(r["metadata"]))
        for r in full])


def call_times_since(telemetry: Engine, vendor_id: int, since: datetime) -> list[datetime]:
    """Start times (aware UTC) of the vendor calls logged for an account since ``since``
    (rejected-record rows are not calls)."""
    c = vendor_sync_logs.c
    with telemetry.connect() as conn:
        rows = conn.execute(select(c.started_at).where(
            c.vendor_id == vendor_id, c.sync_type == "telemetry", c.started_at >= since,
            c.error_message.is_(None) | ~c.error_message.like(f"{REJECTED_PREFIX}%"),
        )).all()
    return [t if t.tzinfo else t.replace(tzinfo=timezone.utc) for (t,) in rows]


def last_run_per_organization(telemetry: Engine, sync_type: str) -> dict[int, datetime]:
    """Start (aware UTC) of the newest run row of ``sync_type`` per ``metadata.organization_id``."""
    org = vendor_sync_logs.c.metadata["organization_id"].as_integer()
    with telemetry.connect() as conn:
        rows = conn.execute(select(org, func.max(vendor_sync_logs.c.started_at))
                            .where(vendor_sync_logs.c.sync_type == sync_type).group_by(org)).all()
    return {o: _aware(t) for o, t in rows if o is not None}


def _aware(t) -> datetime:
    if isinstance(t, str):  # SQLite returns MAX() of a DATETIME column as text
        t = datetime.fromisoformat(t)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)

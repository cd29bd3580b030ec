"""Rows of ``vendor_sync_logs`` (seed 000): one per vendor call and one per job run."""

from __future__ import annotations

from wattline import clock

import json
from datetime import datetime, timezone
from typing import Any, Iterable

from sqlalchemy import Engine, insert, select

from wattline import logs, metrics
from wattline.sources.vendors.models import CallLog, RejectedRecord
from wattline.store.tables import vendor_sync_logs

log = logs.get("wattline.sync")
RAW_LOG_LIMIT = 4000  # characters of a rejected record's raw data kept in its log row


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def log_calls(telemetry: Engine, vendor_id: int, plant_id: int, calls: Iterable[CallLog], job: str) -> None:
    rows = []
    for c in calls:
        metrics.VENDOR_CALLS.labels(str(vendor_id), "success" if c.error is None else "error").inc()
        rows.append(dict(
            vendor_id=vendor_id, plant_id=plant_id, sync_type="telemetry",
            status="success" if c.error is None else "error", error_message=c.error,
            records_processed=c.records, started_at=_dt(c.started_at),
            completed_at=_dt(c.started_at + c.duration_ms / 1000.0),
            metadata={"job": job, "method": c.method, "path": c.path, "http_status": c.status,
                      "attempt": c.attempt, "duration_ms": round(c.duration_ms, 1)},
        ))
    if rows:
        with telemetry.begin() as conn:
            conn.execute(insert(vendor_sync_logs), rows)


def log_rejected(telemetry: Engine, vendor_id: int, plant_id: int, rejected: list[RejectedRecord],
                 job: str) -> None:
    """Corrupted records are skipped, and kept here with their raw data and the reason."""
    if not rejected:
        return
    now = clock.now_dt()
    metrics.REJECTED_RECORDS.labels(str(vendor_id)).inc(len(rejected))
    rows = []
    for r in rejected:
        raw = json.dumps(r.raw, default=str)[:RAW_LOG_LIMIT]
        log.warning("vendor.record_rejected", plant_id=plant_id, reason=r.reason, raw=raw)
        rows.append(dict(vendor_id=vendor_id, plant_id=plant_id, sync_type="telemetry", status="error",
                         error_message=f"rejected record: {r.reason}", records_processed=0,
                         started_at=now, completed_at=now,
                         metadata={"job": job, "rejected_raw": raw}))
    with telemetry.begin() as conn:
        conn.execute(insert(vendor_sync_logs), rows)


def log_run(telemetry: Engine, *, sync_type: str, status: str, started_at: float, records: int,
            vendor_id: int | None = None, plant_id: int | None = None, error: str | None = None,
            metadata: dict[str, Any] | None = None) -> None:
    metrics.JOB_RUNS.labels(sync_type, status).inc()
    with telemetry.begin() as conn:
        conn.execute(insert(vendor_sync_logs).values(
            vendor_id=vendor_id, plant_id=plant_id, sync_type=sync_type, status=status,
            error_message=error, records_processed=records, started_at=_dt(started_at),
            completed_at=clock.now_dt(), metadata=metadata or {},
        ))


def calls_used(telemetry: Engine, vendor_id: int, now: float | None = None) -> tuple[int, int]:
    """Vendor calls logged for an account today and this month (UTC), for quotas."""

    now_dt = datetime.fromtimestamp(now if now is not None else clock.now(), timezone.utc)
    day = now_dt.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    with telemetry.connect() as conn:
        rows = conn.execute(
            select(vendor_sync_logs.c.started_at).where(
                vendor_sync_logs.c.vendor_id == vendor_id, vendor_sync_logs.c.sync_type == "telemetry",
                vendor_sync_logs.c.started_at >= month,
                vendor_sync_logs.c.error_message.is_(None) | ~vendor_sync_logs.c.error_message.like("rejected record%"),
            )).all()
    today = sum(1 for (t,) in rows if (t if t.tzinfo else t.replace(tzinfo=timezone.utc)) >= day)
    return today, len(rows)

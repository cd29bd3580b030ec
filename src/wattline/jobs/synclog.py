"""Rows of ``vendor_sync_logs`` (seed 000): one per vendor call and one per job run,
with their metrics. ``telemetry`` is the telemetry database handle (``ctx.dbs.telemetry``);
the rows are written by :mod:`wattline.store.sync_logs_repo`. Blocking calls."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Iterable

from wattline import clock, logs, metrics
from wattline.sources.vendors.models import CallLog, RejectedRecord
from wattline.store import sync_logs_repo

log = logs.get("wattline.sync")
RAW_LOG_LIMIT = 4000  # characters of a rejected record's raw data kept in its log row


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def log_calls(telemetry, vendor_id: int, plant_id: int, calls: Iterable[CallLog], job: str) -> None:
    sync_logs_repo.add(telemetry, call_rows(vendor_id, plant_id, calls, job))


def call_rows(vendor_id: int, plant_id: int, calls: Iterable[CallLog], job: str) -> list[dict]:
    """The log rows of these calls (counted in the metrics), not yet written."""
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
    return rows


def log_rejected(telemetry, vendor_id: int, plant_id: int, rejected: list[RejectedRecord],
                 job: str) -> None:
    """Corrupted records are skipped, and kept here with their raw data and the reason."""
    sync_logs_repo.add(telemetry, rejected_rows(vendor_id, plant_id, rejected, job))


def rejected_rows(vendor_id: int, plant_id: int, rejected: list[RejectedRecord], job: str) -> list[dict]:
    """The log rows of these rejected records (logged and counted), not yet written."""
    if not rejected:
        return []
    now = clock.now_dt()
    metrics.REJECTED_RECORDS.labels(str(vendor_id)).inc(len(rejected))
    rows = []
    for r in rejected:
        raw = json.dumps(r.raw, default=str)[:RAW_LOG_LIMIT]
        log.warning("vendor.record_rejected", plant_id=plant_id, reason=r.reason, raw=raw)
        rows.append(dict(vendor_id=vendor_id, plant_id=plant_id, sync_type="telemetry", status="error",
                         error_message=f"{sync_logs_repo.REJECTED_PREFIX}: {r.reason}", records_processed=0,
                         started_at=now, completed_at=now,
                         metadata={"job": job, "rejected_raw": raw}))
    return rows


def log_run(telemetry, *, sync_type: str, status: str, started_at: float, records: int,
            vendor_id: int | None = None, plant_id: int | None = None, error: str | None = None,
            metadata: dict[str, Any] | None = None) -> None:
    metrics.JOB_RUNS.labels(sync_type, status).inc()
    sync_logs_repo.add(telemetry, [dict(
        vendor_id=vendor_id, plant_id=plant_id, sync_type=sync_type, status=status,
        error_message=error, records_processed=records, started_at=_dt(started_at),
        completed_at=clock.now_dt(), metadata=metadata or {},
    )])


def calls_used(telemetry, vendor_id: int, now: float | None = None) -> tuple[int, int]:
    """Vendor calls logged for an account today and this month (UTC), for quotas."""

    now_dt = datetime.fromtimestamp(now if now is not None else clock.now(), timezone.utc)
    day = now_dt.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    times = sync_logs_repo.call_times_since(telemetry, vendor_id, month)
    return sum(1 for t in times if t >= day), len(times)

"""Daily sync (seed 000 "Daily Sync") of every plant of organizations with auto sync.

Each plant's window is the last 24 h or everything since its last stored reading,
whichever is longer, so an outage leaves no gap. Plants are fetched concurrently
and ingested group by group (one pipeline batch per group: the pipeline is much
faster on big batches). A plant whose retries are exhausted is skipped and logged;
the run goes on. Afterwards: summaries, the 31-day chart window, one run row.
"""

from __future__ import annotations

from wattline import clock

import asyncio
from dataclasses import asdict, dataclass, field

import numpy as np
from sqlalchemy import select

from wattline import logs
from wattline.context import AppContext
from wattline.domain.readings import ReadingBatch
from wattline.jobs import synclog, window
from wattline.jobs.backfill import format_duration
from wattline.jobs.fetching import VendorSession, fetch_only, last_stored, log_fetch, records_to_batch
from wattline.jobs.plants import VendorPlantInfo, load_plants
from wattline.pipeline import rollup
from wattline.sources.vendors.models import FetchResult
from wattline.sources.vendors.registry import get_adapter_class
from wattline.store.tables import organizations

log = logs.get("wattline.sync")
DAY_S = 86400
GROUP = 100  # plants per pipeline batch


@dataclass
class SyncResult:
    success: bool
    plantsSynced: int
    totalRecords: int
    aggregatesUpdated: int
    errors: list = field(default_factory=list)
    duration: str = "0m 0s"

    def to_dict(self) -> dict:
        return asdict(self)


def due_organizations(ctx: AppContext, now: int) -> set[int]:
    """Organizations with auto sync whose last sync is older than their interval."""
    with ctx.dbs.main_reader.connect() as conn:
        orgs = conn.execute(select(organizations.c.id, organizations.c.sync_interval_minutes)
                            .where(organizations.c.auto_sync_enabled.is_(True))).all()
    with ctx.dbs.telemetry.connect() as conn:
        last = dict(conn.exec_driver_sql(
            "SELECT CAST(json_extract(metadata, '$.organization_id') AS INTEGER), MAX(started_at) "
            "FROM vendor_sync_logs WHERE sync_type = 'daily_sync' GROUP BY 1").all()) \
            if ctx.dbs.telemetry.dialect.name == "sqlite" else dict(conn.exec_driver_sql(
                "SELECT CAST(metadata->>'organization_id' AS INTEGER), MAX(started_at) "
                "FROM vendor_sync_logs WHERE sync_type = 'daily_sync' GROUP BY 1").all())
    due = set()
    for org_id, interval_min in orgs:
        prev = last.get(org_id)
        if prev is None:
            due.add(org_id)
            continue
        prev_ts = prev.timestamp() if hasattr(prev, "timestamp") else _parse(prev)
        if now - prev_ts >= interval_min * 60 - 60:  # a minute of slack for scheduler jitter
            due.add(org_id)
    return due


def _parse(text: str) -> float:
    from datetime import datetime, timezone

    dt = datetime.fromisoformat(str(text))
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


async def sync_all(ctx: AppContext, *, now: int | None = None, organization_ids: set[int] | None = None,
                   only_due: bool = False, concurrency: int = 32,
                   session: VendorSession | None = None) -> SyncResult:
    t0 = clock.now()
    now = int(now if now is not None else t0)
    plants = load_plants(ctx.dbs.main_reader, auto_sync_only=True)
    if only_due:
        due = due_organizations(ctx, now)
        organization_ids = due if organization_ids is None else organization_ids & due
    if organization_ids is not None:
        plants = [p for p in plants if p.organization_id in organization_ids]
    last = last_stored(ctx, plants)
    own = session is None
    session = session or VendorSession(ctx, max_connections=concurrency)
    sem = asyncio.Semaphore(concurrency)
    errors, synced, records = [], [], 0

    async def fetch(p: VendorPlantInfo):
        interval = get_adapter_class(p.vendor_type).limits.interval_s
        start = now - DAY_S
        if p.plant_id in last:
            start = min(start, last[p.plant_id] + interval)
        async with sem:
            try:
                # up to and including a reading stamped exactly now
                return p, *(await fetch_only(session, p, start, now + 1))
            except Exception as exc:  # noqa: BLE001 - one plant never stops the run
                return p, FetchResult(), exc

    try:
        for g in range(0, len(plants), GROUP):
            results = await asyncio.gather(*(fetch(p) for p in plants[g:g + GROUP]))
            batches = []
            for p, fetched, exc in results:
                if fetched.records:
                    batches.append(records_to_batch(p, fetched.records, f"vendor:{p.vendor_type}"))
                records += len(fetched.records)
                log_fetch(ctx, p, fetched, "daily_sync")
                if exc is not None:
                    errors.append({"vendor": p.vendor_type, "plant": p.plant_id, "error": str(exc)})
                    log.error("sync.plant_failed", plant_id=p.plant_id, vendor=p.vendor_type, error=str(exc))
                else:
                    synced.append(p.plant_id)
            if batches:
                await asyncio.to_thread(ctx.pipeline.ingest, concat(batches), refresh_summaries=False)
    finally:
        if own:
            await session.aclose()
    touched = [p.plant_id for p in plants]
    with ctx.dbs.telemetry.begin() as conn:
        rollup.refresh_summaries(conn, ctx.dbs.main_reader, set(touched), now)
        window.refresh(conn, touched, now)
        window.expire(conn, now)
    duration = clock.now() - t0
    for org in sorted({p.organization_id for p in plants}):
        org_plants = [p for p in plants if p.organization_id == org]
        org_errors = [e for e in errors if e["plant"] in {p.plant_id for p in org_plants}]
        synclog.log_run(ctx.dbs.telemetry, sync_type="daily_sync",
                        status="success" if not org_errors else ("partial" if len(org_errors) < len(org_plants) else "error"),
                        started_at=t0, records=records, error="; ".join(e["error"] for e in org_errors)[:2000] or None,
                        metadata={"organization_id": org, "plants": len(org_plants), "errors": len(org_errors)})
    log.info("sync.done", plants=len(plants), synced=len(synced), errors=len(errors), records=records,
             duration_s=round(duration, 2))
    return SyncResult(success=not errors, plantsSynced=len(synced), totalRecords=records,
                      aggregatesUpdated=len(touched), errors=errors, duration=format_duration(duration))


def concat(batches: list[ReadingBatch]) -> ReadingBatch:
    """One batch from many, re-indexing each one's raw payloads."""
    raw, idx, offset = [], [], 0
    for b in batches:
        raw.extend(b.raw_payloads)
        idx.append(np.where(b.raw_index >= 0, b.raw_index + offset, -1))
        offset += len(b.raw_payloads)
    return ReadingBatch(np.concatenate([b.series_id for b in batches]), np.concatenate([b.ts for b in batches]),
                        np.concatenate([b.value for b in batches]), np.concatenate(idx), raw,
                        batches[0].source if len({b.source for b in batches}) == 1 else "vendor")

"""Daily sync (seed 000 "Daily Sync") of every plant of organizations with auto sync.

Each plant's window is the last 24 h or everything since its last stored reading,
whichever is longer, so an outage leaves no gap. Plants are fetched concurrently
and ingested group by group (one pipeline batch per group: the pipeline is much
faster on big batches). A plant whose retries are exhausted is skipped and logged;
the run goes on. Afterwards: summaries, the 31-day chart window, one run row.
Database work runs in worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field

import numpy as np

from wattline import clock, logs
from wattline.context import AppContext
from wattline.domain.readings import ReadingBatch
from wattline.jobs import synclog, window
from wattline.jobs.backfill import format_duration, open_accounts
from wattline.jobs.fetching import VendorSession, fetch_only, last_stored, log_fetch, records_to_batch
from wattline.jobs.plants import VendorPlantInfo, load_plants
from wattline.pipeline import rollup
from wattline.sources.vendors.models import FetchResult
from wattline.sources.vendors.registry import get_adapter_class
from wattline.store import sync_logs_repo
from wattline.store.auto_sync_repo import auto_sync_organizations
from wattline.store.engines import write_transaction

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
    """Organizations with auto sync whose last sync is older than their interval (blocking)."""
    last = sync_logs_repo.last_run_per_organization(ctx.dbs.telemetry, "daily_sync")
    due = set()
    for org in auto_sync_organizations(ctx.dbs.main_reader):
        prev = last.get(org.id)
        # a minute of slack for scheduler jitter
        if prev is None or now - prev.timestamp() >= org.sync_interval_minutes * 60 - 60:
            due.add(org.id)
    return due


async def sync_all(ctx: AppContext, *, now: int | None = None, organization_ids: set[int] | None = None,
                   only_due: bool = False, concurrency: int = 32,
                   session: VendorSession | None = None) -> SyncResult:
    t0 = clock.now()
    now = int(now if now is not None else t0)
    plants = await asyncio.to_thread(load_plants, ctx.dbs.main_reader, auto_sync_only=True)
    if only_due:
        due = await asyncio.to_thread(due_organizations, ctx, now)
        organization_ids = due if organization_ids is None else organization_ids & due
    if organization_ids is not None:
        plants = [p for p in plants if p.organization_id in organization_ids]
    last = await asyncio.to_thread(last_stored, ctx, plants)
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

    def store_group(results: list, batches: list[ReadingBatch]) -> None:
        for p, fetched, _exc in results:
            log_fetch(ctx, p, fetched, "daily_sync")
        if batches:
            ctx.pipeline.ingest(concat(batches), refresh_summaries=False)

    try:
        await asyncio.to_thread(open_accounts, session, plants)
        for g in range(0, len(plants), GROUP):
            results = await asyncio.gather(*(fetch(p) for p in plants[g:g + GROUP]))
            batches = []
            for p, fetched, exc in results:
                if fetched.records:
                    batches.append(records_to_batch(p, fetched.records, f"vendor:{p.vendor_type}"))
                records += len(fetched.records)
                if exc is not None:
                    errors.append({"vendor": p.vendor_type, "plant": p.plant_id, "error": str(exc)})
                    log.error("sync.plant_failed", plant_id=p.plant_id, vendor=p.vendor_type, error=str(exc))
                else:
                    synced.append(p.plant_id)
            await asyncio.to_thread(store_group, results, batches)
    finally:
        if own:
            await session.aclose()
    touched = [p.plant_id for p in plants]
    await asyncio.to_thread(_finish_run, ctx, plants, errors, touched, now, t0, records)
    duration = clock.now() - t0
    log.info("sync.done", plants=len(plants), synced=len(synced), errors=len(errors), records=records,
             duration_s=round(duration, 2))
    return SyncResult(success=not errors, plantsSynced=len(synced), totalRecords=records,
                      aggregatesUpdated=len(touched), errors=errors, duration=format_duration(duration))


def _finish_run(ctx: AppContext, plants: list[VendorPlantInfo], errors: list[dict], touched: list[int],
                now: int, t0: float, records: int) -> None:
    """Summaries, the chart window, and one run row per organization (blocking)."""
    # read-then-write: on SQLite take the write lock at BEGIN, so a job-row write of the
    # runner in between cannot make the upgrade fail with 'database is locked'
    with write_transaction(ctx.dbs.telemetry) as conn:
        rollup.refresh_summaries(conn, ctx.dbs.main_reader, set(touched), now)
        window.refresh(conn, touched, now)
        window.expire(conn, now)
    for org in sorted({p.organization_id for p in plants}):
        org_plants = [p for p in plants if p.organization_id == org]
        org_errors = [e for e in errors if e["plant"] in {p.plant_id for p in org_plants}]
        synclog.log_run(ctx.dbs.telemetry, sync_type="daily_sync",
                        status="success" if not org_errors else ("partial" if len(org_errors) < len(org_plants) else "error"),
                        started_at=t0, records=records, error="; ".join(e["error"] for e in org_errors)[:2000] or None,
                        metadata={"organization_id": org, "plants": len(org_plants), "errors": len(org_errors)})


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

"""Daily sync (seed 000 "Daily Sync") of every plant of organizations with auto sync.

Each plant's window is the last 24 h or everything since its last stored reading,
whichever is longer, so an outage leaves no gap. Plants are fetched concurrently
and ingested group by group (one pipeline batch per group: the pipeline is much
faster on big batches). A plant whose retries are exhausted is skipped and logged;
the run goes on. A plant is synced under its lease (jobs/leases.py), so never beside
its backfill; one whose backfill runs is synced after it. Afterwards: summaries, the
31-day chart window, one run row.
Database work runs in worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Awaitable, Callable

import numpy as np

from wattline import clock, logs
from wattline.context import AppContext
from wattline.domain.readings import ReadingBatch
from wattline.jobs import leases, synclog, window
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
    plantsDeferred: list = field(default_factory=list)  # held by another worker: synced by a later job

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
                   plant_ids: set[int] | None = None, only_due: bool = False, concurrency: int = 32,
                   session: VendorSession | None = None,
                   on_busy: Callable[[list[int]], Awaitable[None]] | None = None,
                   on_progress: Callable[[dict], None] | None = None) -> SyncResult:
    """Sync the auto-sync plants (of ``organization_ids`` / ``plant_ids`` if given).
    ``on_progress`` gets ``{"plants", "plants_done", "records", "errors"}`` after each
    group (the jobs page shows "plants done/all").

    Each plant is synced holding its lease (jobs/leases.py), taken group by group. A
    plant another worker holds (its backfill) is not fetched beside it: ``on_busy``
    gets those plants' ids (the engine defers a sync of each, run after the backfill);
    without it the run waits for each in turn and syncs it then."""
    t0 = clock.now()
    now = int(now if now is not None else t0)
    plants = await asyncio.to_thread(load_plants, ctx.dbs.main_reader, auto_sync_only=True)
    if only_due:
        due = await asyncio.to_thread(due_organizations, ctx, now)
        organization_ids = due if organization_ids is None else organization_ids & due
    if organization_ids is not None:
        plants = [p for p in plants if p.organization_id in organization_ids]
    if plant_ids is not None:
        plants = [p for p in plants if p.plant_id in plant_ids]
    own = session is None
    session = session or VendorSession(ctx, max_connections=concurrency)
    run = _Run(ctx, session, now, asyncio.Semaphore(concurrency))
    held = leases.PlantLeases(ctx, leases.new_holder("sync"))
    busy: list[VendorPlantInfo] = []
    try:
        await asyncio.to_thread(open_accounts, session, plants)
        held.start()
        for g in range(0, len(plants), GROUP):
            group = plants[g:g + GROUP]
            got = await held.take([p.plant_id for p in group])
            busy += [p for p in group if p.plant_id not in got]
            await run.group([p for p in group if p.plant_id in got])
            if on_progress is not None:
                on_progress({"plants": len(plants), "plants_done": g + len(group), "records": run.records,
                             "errors": len(run.errors)})
        await asyncio.to_thread(_refresh, ctx, run.touched, now)
        await held.close()  # the synced plants are free for a backfill from here on
        if busy and on_busy is not None:
            await on_busy([p.plant_id for p in busy])
            log.info("sync.deferred_busy", plants=[p.plant_id for p in busy][:50], count=len(busy))
        elif busy:
            for p in busy:
                async with leases.hold_plant(ctx, p.plant_id, "sync"):
                    await run.group([p])
                    await asyncio.to_thread(_refresh, ctx, [p.plant_id], now)
            busy = []
    finally:
        await held.close()
        if own:
            await session.aclose()
    deferred = [p.plant_id for p in busy]
    await asyncio.to_thread(_finish_run, ctx, plants, run.errors, deferred, now, t0, run.records,
                            plant_ids is not None)
    duration = clock.now() - t0
    log.info("sync.done", plants=len(plants), synced=len(run.synced), errors=len(run.errors), records=run.records,
             deferred=len(deferred), duration_s=round(duration, 2))
    return SyncResult(success=not run.errors, plantsSynced=len(run.synced), totalRecords=run.records,
                      aggregatesUpdated=len(run.touched), errors=run.errors, duration=format_duration(duration),
                      plantsDeferred=deferred)


@dataclass
class _Run:
    """What one sync run fetched and stored, group by group."""

    ctx: AppContext
    session: VendorSession
    now: int
    sem: asyncio.Semaphore
    errors: list = field(default_factory=list)
    synced: list = field(default_factory=list)
    touched: list = field(default_factory=list)
    records: int = 0

    async def fetch(self, p: VendorPlantInfo, last: dict):
        interval = get_adapter_class(p.vendor_type).limits.interval_s
        start = self.now - DAY_S
        if p.plant_id in last:
            start = min(start, last[p.plant_id] + interval)
        async with self.sem:
            try:
                # up to and including a reading stamped exactly now
                return p, *(await fetch_only(self.session, p, start, self.now + 1))
            except Exception as exc:  # noqa: BLE001 - one plant never stops the run
                return p, FetchResult(), exc

    def store(self, results: list, batches: list[ReadingBatch]) -> None:
        for p, fetched, _exc in results:
            log_fetch(self.ctx, p, fetched, "daily_sync")
        if batches:
            self.ctx.pipeline.ingest(concat(batches), refresh_summaries=False)

    async def group(self, plants: list[VendorPlantInfo]) -> None:
        """Fetch ``plants`` concurrently (each from its last stored reading, read now:
        a backfill may just have stored more) and store them as one pipeline batch."""
        if not plants:
            return
        last = await asyncio.to_thread(last_stored, self.ctx, plants)
        results = await asyncio.gather(*(self.fetch(p, last) for p in plants))
        batches = []
        for p, fetched, exc in results:
            if fetched.records:
                batches.append(records_to_batch(p, fetched.records, f"vendor:{p.vendor_type}"))
            self.records += len(fetched.records)
            if exc is not None:
                self.errors.append({"vendor": p.vendor_type, "plant": p.plant_id, "error": str(exc)})
                log.error("sync.plant_failed", plant_id=p.plant_id, vendor=p.vendor_type, error=str(exc))
            else:
                self.synced.append(p.plant_id)
        await asyncio.to_thread(self.store, results, batches)
        self.touched += [p.plant_id for p in plants]


def _refresh(ctx: AppContext, touched: list[int], now: int) -> None:
    """Summaries and the chart window of the plants synced (blocking), under their leases."""
    if not touched:
        return
    # read-then-write: on SQLite take the write lock at BEGIN, so a job-row write of the
    # runner in between cannot make the upgrade fail with 'database is locked'
    with write_transaction(ctx.dbs.telemetry) as conn:
        rollup.refresh_summaries(conn, ctx.dbs.main_reader, set(touched), now)
        window.refresh(conn, touched, now)


def _finish_run(ctx: AppContext, plants: list[VendorPlantInfo], errors: list[dict], deferred: list[int],
                now: int, t0: float, records: int, per_plant: bool) -> None:
    """The chart window's expiry and one run row per organization (blocking). A run of
    named plants (a deferred one) writes its row without the organization: it is not
    the organization's daily sync, which ``due_organizations`` times."""
    with write_transaction(ctx.dbs.telemetry) as conn:
        window.expire(conn, now)
    for org in sorted({p.organization_id for p in plants}):
        org_plants = [p for p in plants if p.organization_id == org]
        org_errors = [e for e in errors if e["plant"] in {p.plant_id for p in org_plants}]
        meta = {"organization_id": org, "plants": len(org_plants), "errors": len(org_errors),
                "deferred": len([p for p in org_plants if p.plant_id in deferred])}
        if per_plant:
            meta = {"plant_ids": [p.plant_id for p in org_plants], "errors": len(org_errors)}
        synclog.log_run(ctx.dbs.telemetry, sync_type="daily_sync",
                        status="success" if not org_errors else ("partial" if len(org_errors) < len(org_plants) else "error"),
                        started_at=t0, records=records, error="; ".join(e["error"] for e in org_errors)[:2000] or None,
                        plant_id=org_plants[0].plant_id if per_plant and len(org_plants) == 1 else None,
                        metadata=meta)


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

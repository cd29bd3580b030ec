"""Backfill (seed 000 "One-Time Reload"): a plant's history from its start, resumable.

The range from ``start_operating_time`` to now is fetched in chunks of 7 days (or
the vendor's largest range per call, if smaller). After each chunk its readings
are in the database and the checkpoint records how far fetching got, so a rerun
after a crash or kill resumes at max(last stored reading + one interval,
checkpoint) and never refetches a stored chunk, leaving no gap. Consecutive chunks
are stored together, up to ``FLUSH_RECORDS`` records per pipeline batch. A chunk whose
retries are exhausted stops the run (status ``partial``) rather than skipping
ahead, so the next run resumes exactly there. A used-up call quota pauses the run
until the quota refreshes. Database work runs in worker threads, off the event loop.
"""

from __future__ import annotations

from wattline import clock as wall_clock

import asyncio
import math
from dataclasses import asdict, dataclass, field
from typing import Awaitable, Callable

from wattline import logs
from wattline.context import AppContext
from wattline.domain import timeutil
from wattline.jobs import leases, synclog, window
from wattline.jobs.fetching import VendorSession, fetch_only, merge, store_fetch
from wattline.jobs.plants import VendorPlantInfo, load_plant
from wattline.pipeline import rollup
from wattline.sources.vendors.errors import QuotaExhausted
from wattline.sources.vendors.registry import get_adapter_class
from wattline.store import backfill_checkpoints_repo, backfill_figures_repo
from wattline.store.engines import write_transaction

log = logs.get("wattline.backfill")
CHUNK_S = 7 * 86400
# chunks are stored together up to this many records or chunks (empty chunks count):
# what a crash may have to refetch
FLUSH_RECORDS = 5000
FLUSH_CHUNKS = 8


@dataclass
class BackfillProgress:
    plant_id: int
    chunk: int
    total_chunks: int
    records: int
    fetched_until: int
    paused_until: int | None = None

    def public(self) -> dict:
        """A job's progress (``/api/jobs/{id}``), in-process and on the engine alike."""
        return {"chunk": self.chunk, "totalChunks": self.total_chunks, "records": self.records,
                "pausedUntil": self.paused_until}


@dataclass
class BackfillResult:
    success: bool
    plantId: int
    recordsSynced: int
    chunksProcessed: int
    duration: str
    aggregates: dict
    cumulative: dict = field(default_factory=dict)
    resumedFrom: str | None = None
    errors: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def format_duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m}m {s}s" if h else f"{m}m {s}s"


def _save_checkpoint(ctx: AppContext, plant_id: int, fetched_until: int, target: int, chunks: int,
                     records: int) -> None:
    backfill_checkpoints_repo.save(ctx.dbs.telemetry, plant_id, fetched_until=fetched_until, target_end=target,
                                   chunks=chunks, records=records, now=wall_clock.now_dt())


def open_accounts(session: VendorSession, plants: list[VendorPlantInfo]) -> None:
    """Open each account's adapter before fetching: a new rate limiter reads the calls
    already logged today (a database read, kept off the event loop). A plant whose
    adapter cannot be made fails later, in its own fetch, as before."""
    for p in plants:
        try:
            session.adapter_for(p)
        except Exception:  # noqa: BLE001 - reported by that plant's fetch
            pass


def resume_point(ctx: AppContext, plant: VendorPlantInfo, interval_s: int) -> int:
    """Where fetching starts: the plant's start, or the backfill's own checkpoint (blocking).

    Not after the newest stored reading: a sync or poll that stored the last day before
    the first backfill would make it skip the whole history (found by bench/faults.py).
    A run killed between storing a chunk and saving its checkpoint fetches that chunk
    again, which the idempotent pipeline turns into nothing."""
    start = plant.start_operating_time
    if start is None:
        raise ValueError(f"plant {plant.plant_id} has no start_operating_time to backfill from")
    cp = backfill_checkpoints_repo.fetched_until(ctx.dbs.telemetry, plant.plant_id)
    if cp is not None:
        start = max(start, cp)
    return int(start)


async def backfill_plant(
    ctx: AppContext, plant_id: int, *, now: int | None = None,
    on_progress: Callable[[BackfillProgress], None] | None = None,
    session: VendorSession | None = None, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = wall_clock.now, plant: VendorPlantInfo | None = None,
) -> BackfillResult:
    """Load ``plant_id``'s history from its start of operation to ``now``, resuming at
    its checkpoint, holding the plant's lease (jobs/leases.py: a sync of the plant waits,
    or waits for this). ``plant`` gives the vendor facts directly (a monitored system,
    whose start is the backfill's ``--since``; the caller holds the system's lease); by
    default they are the plant's registry row."""
    kw = dict(now=now, on_progress=on_progress, session=session, sleep=sleep, clock=clock)
    if plant is not None:
        return await _backfill(ctx, plant_id, plant=plant, **kw)
    async with leases.hold_plant(ctx, plant_id):
        return await _backfill(ctx, plant_id, plant=None, **kw)


async def _backfill(ctx: AppContext, plant_id: int, *, now, on_progress, session, sleep, clock,
                    plant: VendorPlantInfo | None) -> BackfillResult:
    t_start = clock()
    end = int(now if now is not None else clock()) + 1  # a reading stamped exactly now is included
    if plant is None:
        plant = await asyncio.to_thread(load_plant, ctx.dbs.main_reader, plant_id)
    cls = get_adapter_class(plant.vendor_type)
    interval = cls.limits.interval_s
    chunk_s = min(CHUNK_S, cls.limits.max_range_s)
    first = plant.start_operating_time or end
    begin = await asyncio.to_thread(resume_point, ctx, plant, interval)
    total = max(1, math.ceil((end - first) / chunk_s))
    done = max(0, (begin - first) // chunk_s)
    resumed = begin > first
    if resumed:
        log.info("backfill.resume", plant_id=plant_id, resume_from=timeutil.iso(begin))
    records, errors = 0, []
    own_session = session is None
    session = session or VendorSession(ctx)
    status = "success"
    pending: list = []  # fetched chunks not yet handed to the pipeline
    storing: asyncio.Task | None = None  # the previous flush, running in a worker thread

    def store(batch, until: int, chunks: int, n_records: int) -> None:
        store_fetch(ctx, plant, batch, job="backfill")
        _save_checkpoint(ctx, plant_id, until, end, chunks, n_records)

    async def flush(until: int, *, wait: bool = False) -> None:
        # one pipeline batch for several chunks: far cheaper than one per chunk; it is
        # stored in a thread while the next chunks are fetched, strictly in order
        nonlocal pending, storing
        if storing is not None:
            await storing
        batch, pending = merge(pending), []
        storing = asyncio.ensure_future(asyncio.to_thread(store, batch, until, done, records))
        if wait:
            await storing
            storing = None

    try:
        # a new account limiter reads the calls logged today: a database read, off the loop
        await asyncio.to_thread(open_accounts, session, [plant])
        cursor = begin
        while cursor < end:
            chunk_end = min(cursor + chunk_s, end)
            fetched, error = await fetch_only(session, plant, cursor, chunk_end)
            records += len(fetched.records)
            pending.append(fetched)
            if isinstance(error, QuotaExhausted):
                await flush(cursor, wait=True)
                # resume after the fetched prefix once the quota refreshes
                log.warning("backfill.paused", plant_id=plant_id, until=timeutil.iso(error.resets_at_ts))
                if on_progress:
                    on_progress(BackfillProgress(plant_id, done, total, records, cursor, error.resets_at_ts))
                await sleep(max(0.0, error.resets_at_ts - clock()))
                if fetched.records:
                    cursor = fetched.records[-1].ts + interval
                continue
            if error is not None:
                await flush(cursor, wait=True)
                status = "partial"
                errors.append({"vendor": plant.vendor_type, "plant": plant_id,
                               "window": [timeutil.iso(cursor), timeutil.iso(chunk_end)], "error": str(error)})
                log.error("backfill.chunk_failed", plant_id=plant_id, error=str(error),
                          window_start=timeutil.iso(cursor))
                break
            done += 1
            cursor = chunk_end
            if cursor >= end:
                await flush(cursor, wait=True)
            elif len(pending) >= FLUSH_CHUNKS or sum(len(f.records) for f in pending) >= FLUSH_RECORDS:
                await flush(cursor)
            log.info("backfill.progress", plant_id=plant_id, chunk=done, total_chunks=total,
                     records=records, fetched_until=timeutil.iso(cursor))
            if on_progress:
                on_progress(BackfillProgress(plant_id, done, total, records, cursor))
    finally:
        if storing is not None:
            await storing
        if own_session:
            await session.aclose()
    aggregates, cumulative = await asyncio.to_thread(finish_plant, ctx, plant, end)
    duration = clock() - t_start
    await asyncio.to_thread(
        synclog.log_run, ctx.dbs.telemetry, sync_type="backfill", status=status, started_at=t_start,
        records=records, vendor_id=plant.vendor_account_id, plant_id=plant_id,
        error="; ".join(e["error"] for e in errors) or None,
        metadata={"chunks": done, "total_chunks": total, "resumed": resumed})
    return BackfillResult(
        success=status == "success", plantId=plant_id, recordsSynced=records, chunksProcessed=done,
        duration=format_duration(duration), aggregates=aggregates, cumulative=cumulative,
        resumedFrom=timeutil.iso(begin) if resumed else None, errors=errors,
    )


def finish_plant(ctx: AppContext, plant: VendorPlantInfo, now: int) -> tuple[dict, dict]:
    """Plant and work-order summaries, the chart window and the seed's cumulative figures (blocking)."""
    # read-then-write: on SQLite take the write lock at BEGIN, so a job-row write of the
    # runner in between cannot make the upgrade fail with 'database is locked'
    with write_transaction(ctx.dbs.telemetry) as conn:
        rollup.refresh_summaries(conn, ctx.dbs.main_reader, {plant.plant_id}, now)
        window.refresh(conn, [plant.plant_id], now)
        row = backfill_figures_repo.plant_summary(conn, plant.plant_id)
    aggregates = {} if row is None else {
        k: (None if row[k] is None else float(row[k])) for k in (
            "daily_energy_kwh", "monthly_energy_mwh", "yearly_energy_mwh", "total_energy_mwh",
            "current_power_kw")}
    return aggregates, cumulative_figures(ctx, plant, now)


def cumulative_figures(ctx: AppContext, plant: VendorPlantInfo, now: int) -> dict:
    """Energy from the plant's start to the end of last year, last month, yesterday (MWh)."""
    sid = plant.series.get("energy_total") or plant.series.get("power")
    if sid is None:
        return {}
    tz = plant.timezone
    d = timeutil.local_date(now, tz)
    bounds = {
        "year_on_year_mwh": ("year", timeutil.year_bounds(d.year, tz)[0]),
        "month_on_month_mwh": ("month", timeutil.month_bounds(d.year, d.month, tz)[0]),
        "till_last_day_mwh": ("day", timeutil.day_bounds(d, tz)[0]),
    }
    totals = backfill_figures_repo.energy_before(ctx.dbs.telemetry, int(sid), list(bounds.values()))
    return {name: round(int(total) / 1e9, 3) for name, total in zip(bounds, totals)}

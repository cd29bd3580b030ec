"""Backfill of a monitored system (seed 003): its vendor's history from ``since`` on,
through the plant backfill (same chunks, pipeline, checkpoints, quota pauses), so it
resumes where a previous run stopped and a rerun stores nothing twice.

A system has no start of operation in the registry: the caller names where its
history begins. Vendors keep history for different lengths (Amber's usage ~90 days,
Enphase by its monthly quota); the adapter asks only for what its vendor has.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from wattline.context import AppContext
from wattline.jobs import leases
from wattline.jobs.backfill import BackfillResult, backfill_plant
from wattline.store import systems_repo


class SystemNotBackfillable(LookupError):
    """No such system, or it is paused or has no vendor account / site id."""


async def backfill_system(ctx: AppContext, system_id: int, since_ts: int, **kwargs) -> BackfillResult:
    """Load ``system_id``'s history from ``since_ts`` (UTC epoch s) to now; ``kwargs``
    go to :func:`wattline.jobs.backfill.backfill_plant` (``now``, ``on_progress``, …)."""
    found = await asyncio.to_thread(systems_repo.pollable_systems, ctx.dbs.main_reader, [system_id])
    if not found:
        raise SystemNotBackfillable(f"no active system with id {system_id} and a vendor account")
    info = replace(found[0], start_operating_time=int(since_ts))
    # the claim a poll takes: no poll of the system runs meanwhile (they are skipped)
    async with leases.hold_system(ctx, system_id):
        return await backfill_plant(ctx, system_id, plant=info, **kwargs)

"""One worker at a time on a plant or a system, across processes: a lease in the
telemetry database that its holder renews while the work runs.

* a plant (``plant:ID``, table ``resource_leases``): its backfill holds it for the
  whole run; a sync holds the leases of the plants it syncs;
* a system: its backfill holds the same claim a poll takes (``system_poll_state``),
  so a poll due meanwhile is skipped and counted as an overrun, and the backfill waits
  for a running poll.

A lease lasts ``Settings.lease_s`` (WATTLINE_LEASE_S, default 60 s) and is renewed
every quarter of it; a holder killed with SIGKILL renews nothing, so its resources are
free again at most ``lease_s`` after its last renewal and the work resumes elsewhere
(every write is idempotent). A holder that finds its lease taken (it stalled past the
expiry and another took over) has its work cancelled with :class:`LeaseLost`.

Why a lease row and not PostgreSQL advisory locks: it works the same on the embedded
SQLite default; it needs no connection pinned for an hours-long backfill; and a
PostgreSQL restart (the fault suite does it) would drop an advisory lock silently
while its holder works on, where a lease stays in the table and its holder's next
renewal says whether it still holds it.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable

from wattline import clock, logs
from wattline.context import AppContext
from wattline.store import leases_repo, sessions_repo

log = logs.get("wattline.leases")
WAIT_MAX_S = 5.0  # the longest pause between two tries of a busy resource


class LeaseLost(RuntimeError):
    """The work's lease expired and another holder took its resource."""


def plant_resource(plant_id: int) -> str:
    """A plant's lease, and the engine lock of its jobs."""
    return f"plant:{int(plant_id)}"


def system_resource(system_id: int) -> str:
    """The engine lock of a system's backfill (its lease is the poll claim)."""
    return f"system:{int(system_id)}"


def new_holder(what: str) -> str:
    """A holder name unique to one run (the process id helps an operator find it)."""
    return f"{what}/{os.getpid()}/{uuid.uuid4().hex[:12]}"


def _now_ms() -> int:
    return int(clock.now() * 1000)


@dataclass
class PlantLeases:
    """The plant leases one run holds (``holder``), renewed in the background between
    :meth:`start` and :meth:`close`."""

    ctx: AppContext
    holder: str
    held: set[int] = field(default_factory=set)
    lost: set[int] = field(default_factory=set)
    on_lost: Callable[[], None] | None = None
    _renewer: asyncio.Task | None = None

    @property
    def lease_ms(self) -> int:
        return int(self.ctx.settings.lease_s * 1000)

    async def take(self, plant_ids: list[int]) -> set[int]:
        """Take those of ``plant_ids`` that are free now; returns them."""
        names = {plant_resource(p): p for p in plant_ids}
        got = await asyncio.to_thread(leases_repo.acquire, self.ctx.dbs.telemetry, list(names), self.holder,
                                      _now_ms(), self.lease_ms)
        ids = {names[n] for n in got}
        self.held |= ids
        return ids

    async def renew(self) -> None:
        still = await asyncio.to_thread(leases_repo.renew, self.ctx.dbs.telemetry, self.holder, _now_ms(),
                                        self.lease_ms)
        gone = self.held - {int(n.split(":", 1)[1]) for n in still}
        if gone:
            log.error("lease.lost", holder=self.holder, plants=sorted(gone)[:50])
            self.lost |= gone
            self.held -= gone
            if self.on_lost is not None:
                self.on_lost()

    async def release(self, plant_ids: list[int] | None = None) -> None:
        names = None if plant_ids is None else [plant_resource(p) for p in plant_ids]
        await asyncio.to_thread(leases_repo.release, self.ctx.dbs.telemetry, self.holder, names)
        self.held -= set(self.held if plant_ids is None else plant_ids)

    def start(self) -> None:
        self._renewer = asyncio.create_task(_renew_forever(self.renew, self.ctx.settings.lease_s),
                                            name=f"renew-{self.holder}")

    async def close(self) -> None:
        """Stop renewing and release everything still held (again: nothing)."""
        if self._renewer is None and not self.held:
            return
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
            self._renewer = None
        await self.release()


async def _renew_forever(renew, lease_s: float) -> None:
    """``renew()`` every quarter lease; a failed renewal (the database restarting) is
    tried again at the next one: three may fail before the lease expires."""
    while True:
        await asyncio.sleep(lease_s / 4)
        try:
            await renew()
        except Exception as exc:  # noqa: BLE001 - the next renewal tries again
            log.warning("lease.renew_failed", error=str(exc))


async def _wait_for(take, what: str) -> None:
    """Until ``take()`` says it got the resource, with a growing pause (≤ WAIT_MAX_S)."""
    pause = 0.2
    while not await take():
        if pause == 0.2:  # once: another worker has it (or a killed one's lease has not run out)
            log.warning("lease.waiting", resource=what)
        await asyncio.sleep(pause)
        pause = min(pause * 2, WAIT_MAX_S)


@asynccontextmanager
async def _cancel_on_loss(lost: Callable[[], bool], what: str) -> AsyncIterator[Callable[[], None]]:
    """Yields the callback that cancels the running task; a cancellation it caused
    leaves as :class:`LeaseLost` instead."""
    task = asyncio.current_task()
    try:
        yield task.cancel
    except asyncio.CancelledError:
        if lost():
            task.uncancel()
            raise LeaseLost(f"the lease on {what} expired and another worker took it") from None
        raise


@asynccontextmanager
async def hold_plant(ctx: AppContext, plant_id: int, what: str = "backfill") -> AsyncIterator[None]:
    """Work on ``plant_id`` alone: wait until its lease is free, hold it (renewed)
    while the block runs, release it after."""
    leases = PlantLeases(ctx, new_holder(what))
    resource = plant_resource(plant_id)
    await _wait_for(lambda: _took(leases, plant_id), resource)
    try:
        async with _cancel_on_loss(lambda: bool(leases.lost), resource) as cancel:
            leases.on_lost = cancel
            leases.start()
            yield
    finally:
        await leases.close()


async def _took(leases: PlantLeases, plant_id: int) -> bool:
    return plant_id in await leases.take([plant_id])


@asynccontextmanager
async def hold_system(ctx: AppContext, system_id: int, what: str = "system_backfill") -> AsyncIterator[None]:
    """Work on system ``system_id`` alone: wait until no poll (or other backfill) holds
    its claim, hold it (renewed) while the block runs, release it after."""
    holder = new_holder(what)
    lease_s = ctx.settings.lease_s
    tel = ctx.dbs.telemetry
    lost = []

    async def take() -> bool:
        return await asyncio.to_thread(sessions_repo.claim_for, tel, system_id, holder, _now_ms(),
                                       int(lease_s * 1000))

    await _wait_for(take, system_resource(system_id))
    try:
        async with _cancel_on_loss(lambda: bool(lost), system_resource(system_id)) as cancel:
            async def renew() -> None:
                if system_id not in await asyncio.to_thread(sessions_repo.renew_for, tel, holder, _now_ms(),
                                                            int(lease_s * 1000)):
                    log.error("lease.lost", holder=holder, system=system_id)
                    lost.append(system_id)
                    cancel()

            renewer = asyncio.create_task(_renew_forever(renew, lease_s), name=f"renew-{holder}")
            try:
                yield
            finally:
                renewer.cancel()
                await asyncio.gather(renewer, return_exceptions=True)
    finally:
        await asyncio.to_thread(sessions_repo.release_for, tel, holder)

"""One worker at a time on a plant or a system (jobs/leases.py), in-process on SQLite
and PostgreSQL: the lease table's rules, a sync that leaves a plant its backfill holds
and syncs it afterwards, a system backfill that holds polls of its system off, a holder
whose lease was taken over stops with LeaseLost, and a manual poll beside a shard's
never polls a system twice. The same across worker processes: tests/test_engine_worker.py."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from test_poll import FAST, SLOW, add, sessions, world  # noqa: F401  (the fixture)
from world import CLOUD_NOW, WorldPlant, cloud_config, make_ctx, set_up, snapshot
from wattline.context import AppContext
from wattline.jobs import leases
from wattline.jobs.backfill import backfill_plant
from wattline.jobs.poll import Poller
from wattline.jobs.sync import sync_all
from wattline.jobs.system_backfill import backfill_system
from wattline.simulator.vendor_cloud.server import BackgroundCloud
from wattline.store import leases_repo, sessions_repo

DAY = 86400
PLANTS = [WorldPlant(401, "solarman", "64786338", "Europe/Berlin", CLOUD_NOW - 20 * DAY),
          WorldPlant(402, "solarman", "64786339", "UTC", CLOUD_NOW - 20 * DAY)]


def with_lease(ctx: AppContext, lease_s: float) -> AppContext:
    return AppContext(ctx.settings.model_copy(update={"lease_s": lease_s}), ctx.dbs, ctx.pipeline)


def test_a_lease_has_one_holder_until_it_expires_and_only_its_holder_renews_or_releases_it(dbs):
    tel, now = dbs.telemetry, 1_000_000
    assert leases_repo.acquire(tel, ["plant:1", "plant:2"], "a", now, 10_000) == {"plant:1", "plant:2"}
    assert leases_repo.acquire(tel, ["plant:2", "plant:3"], "b", now + 1, 10_000) == {"plant:3"}
    assert leases_repo.acquire(tel, ["plant:1"], "a", now + 2, 10_000) == {"plant:1"}  # its own again
    assert leases_repo.renew(tel, "a", now + 5_000, 10_000) == {"plant:1", "plant:2"}
    # a's lease ran out (its process died): b takes it over; a's renewal no longer has it
    assert leases_repo.acquire(tel, ["plant:1"], "b", now + 16_000, 10_000) == {"plant:1"}
    assert leases_repo.renew(tel, "a", now + 16_001, 10_000) == {"plant:2"}
    leases_repo.release(tel, "a", ["plant:1", "plant:2"])  # plant:1 is b's: untouched
    assert leases_repo.holders(tel, now + 10_000) == {"plant:1": "b", "plant:3": "b"}
    assert leases_repo.holders(tel, now + 16_002) == {"plant:1": "b"}  # plant:3 ran out
    leases_repo.release(tel, "b")
    assert leases_repo.holders(tel, now) == {}


def call_spans(ctx, job: str) -> dict[int, tuple[int, int]]:
    """plant id -> [first call's start, last call's end] (epoch ms) of ``job``'s vendor
    calls (``backfill``, ``daily_sync``), from the sync logs."""
    from sqlalchemy import func, select

    from wattline.store.tables import vendor_sync_logs as v

    q = (select(v.c.plant_id, func.min(v.c.started_at), func.max(v.c.completed_at))
         .where(v.c.sync_type == "telemetry", v.c.metadata["job"].as_string() == job).group_by(v.c.plant_id))
    with ctx.dbs.telemetry.connect() as conn:
        return {pid: (_ms(a), _ms(b)) for pid, a, b in conn.execute(q)}


def test_a_sync_leaves_a_plant_its_backfill_holds_and_syncs_it_after_with_the_same_result(dbs, tmp_path):
    from helpers import make_sqlite

    ctx = make_ctx(dbs, tmp_path / "a")
    (tmp_path / "refdb").mkdir()
    ref = make_ctx(make_sqlite(tmp_path / "refdb"), tmp_path / "ref")
    with BackgroundCloud(cloud_config(PLANTS, latency_ms=150)) as cloud:
        for c in (ctx, ref):
            set_up(c, cloud.base_url, PLANTS)

        async def together():
            other = leases.PlantLeases(ctx, leases.new_holder("backfill"))
            assert await other.take([401])  # as if a backfill of 401 ran
            seen = []

            async def defer(ids):
                seen.extend(ids)

            first = await sync_all(ctx, now=CLOUD_NOW, on_busy=defer)  # the engine's way: deferred
            assert seen == [401] and first.plantsDeferred == [401] and first.plantsSynced == 1
            await other.release()
            backfill = asyncio.create_task(backfill_plant(ctx, 401, now=CLOUD_NOW))
            while "plant:401" not in await asyncio.to_thread(leases_repo.holders, ctx.dbs.telemetry, 0):
                await asyncio.sleep(0.02)
            sync = await sync_all(ctx, now=CLOUD_NOW)  # in-process: syncs 402, waits for 401, syncs it
            return await backfill, sync

        backfilled, result = asyncio.run(together())
        assert backfilled.success and result.success and result.plantsSynced == 2 and result.plantsDeferred == []
        asyncio.run(sync_all(ref, now=CLOUD_NOW))  # one after the other
        asyncio.run(backfill_plant(ref, 401, now=CLOUD_NOW))
        asyncio.run(sync_all(ref, now=CLOUD_NOW))
    assert leases_repo.holders(ctx.dbs.telemetry, 0) == {}  # all released
    backfill_span, sync_span = call_spans(ctx, "backfill")[401], call_spans(ctx, "daily_sync")[401]
    assert sync_span[0] >= backfill_span[1] - 2, (backfill_span, sync_span)  # 401 synced after its backfill
    a, b = snapshot(ctx), snapshot(ref)
    for table in ("readings", "ledger", "aggregates", "plants"):
        assert a[table] == b[table], table


def test_a_backfill_waits_for_the_plants_lease_and_a_lost_lease_stops_it(dbs, tmp_path):
    ctx = with_lease(make_ctx(dbs, tmp_path), 1.0)
    long_one = [replace(PLANTS[0], start=CLOUD_NOW - 200 * DAY)]
    with BackgroundCloud(cloud_config(long_one, latency_ms=300)) as cloud:
        set_up(ctx, cloud.base_url, long_one)

        async def run():
            other = leases.PlantLeases(ctx, leases.new_holder("sync"))
            assert await other.take([401])
            task = asyncio.create_task(backfill_plant(ctx, 401, now=CLOUD_NOW))
            await asyncio.sleep(1.5)
            assert not task.done() and not cloud.state.stats.served_data_pages()  # it waits, asks nothing
            await other.release()
            while not leases_repo.holders(ctx.dbs.telemetry, 0):
                await asyncio.sleep(0.05)
            # its lease is taken over (as if it had stalled past the expiry): it stops
            (holder,) = leases_repo.holders(ctx.dbs.telemetry, 0).values()
            assert holder.startswith("backfill/")
            far = int((CLOUD_NOW + 10 * 365 * DAY) * 1000)
            assert leases_repo.acquire(ctx.dbs.telemetry, ["plant:401"], "thief", far, 60_000)
            with pytest.raises(leases.LeaseLost):
                await asyncio.wait_for(task, 30)

        asyncio.run(run())
    assert leases_repo.holders(ctx.dbs.telemetry, 0) == {"plant:401": "thief"}  # the loser left it alone


def test_a_system_backfill_holds_polls_of_its_system_off_and_waits_for_a_running_poll(world):
    ctx = with_lease(world, 2.0)
    since = CLOUD_NOW - 3 * DAY
    with BackgroundCloud(cloud_config([SLOW], latency_ms=800)) as cloud:
        sid = add(ctx, SLOW, cloud.base_url, "slow")

        async def run():
            poller = Poller(ctx)
            try:
                polls, _ = await poller.start_due(force=True)  # a poll holds the system's claim
                backfill = asyncio.create_task(backfill_system(ctx, sid, since, now=CLOUD_NOW))
                await asyncio.gather(*polls)
                t_poll_end = max(s["started_at_ms"] + s["duration_ms"] for s in sessions(ctx, sid))
                await asyncio.wait_for(_backfill_holds(ctx, sid), 60)
                _, report = await poller.start_due(force=True)  # during the backfill: skipped
                assert report.skipped_running == [sid]
                result = await asyncio.wait_for(backfill, 120)
                return t_poll_end, result
            finally:
                await poller.aclose()

        t_poll_end, result = asyncio.run(run())
        assert result.success
        after = asyncio.run(Poller(ctx).poll(force=True))  # released: polled again
        assert [o.system_id for o in after.outcomes] == [sid]
    state = sessions_repo.poll_states(ctx.dbs.telemetry, [sid])[sid]
    assert state["skipped_overruns"] == 1 and state["lease_holder"] is None
    first_call = call_spans(ctx, "backfill")[sid][0]
    assert first_call >= t_poll_end - 5, (first_call, t_poll_end)  # it asked nothing while the poll ran


async def _backfill_holds(ctx, sid: int) -> None:
    while (await asyncio.to_thread(sessions_repo.poll_states, ctx.dbs.telemetry, [sid]))[sid]["lease_holder"] is None:
        await asyncio.sleep(0.05)


def _ms(t) -> int:
    from datetime import datetime, timezone

    if isinstance(t, str):
        t = datetime.fromisoformat(t)
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return int(t.timestamp() * 1000)


def test_a_manual_poll_beside_a_shards_tick_polls_each_system_once(world):
    ctx = world
    with BackgroundCloud(cloud_config(FAST, latency_ms=3000)) as cloud:
        ids = [add(ctx, p, cloud.base_url, f"m{i}") for i, p in enumerate(FAST)]

        async def both():
            manual, shard = Poller(ctx), Poller(ctx)  # the engine's "poll" and "poll:0/1" jobs
            try:
                return await asyncio.gather(manual.poll(cause="USER", force=True),
                                            shard.poll(force=True, shard=(0, 1)))
            finally:
                await manual.aclose()
                await shard.aclose()

        a, b = asyncio.run(both())
    assert sorted(o.system_id for o in a.outcomes + b.outcomes) == sorted(ids)  # each by one of them
    assert sorted(a.skipped_running + b.skipped_running) == sorted(ids)  # and skipped by the other
    assert all(len(sessions(ctx, sid)) == 1 for sid in ids)

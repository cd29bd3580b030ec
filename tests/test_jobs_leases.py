"""Jobs without process-global state: owner and lease on the job row.

A starting server fails only the jobs whose lease expired, the running worker renews
its lease, duplicate keys are refused across runners, and the jobs package keeps no
module-level registry. Sync and backfill touch the database only from worker threads.
"""

from __future__ import annotations

import ast
import asyncio
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from world import CLOUD_NOW, WorldPlant, cloud_config, make_ctx, set_up
from wattline import clock
from wattline.api.app import create_app
from wattline.jobs.backfill import backfill_plant
from wattline.jobs.runner import EXPIRED_REASON, JobAlreadyRunning, JobRunner
from wattline.jobs.sync import sync_all
from wattline.simulator.vendor_cloud.server import BackgroundCloud
from wattline.store import jobs_repo

JOBS_SRC = Path(__file__).resolve().parents[1] / "src" / "wattline" / "jobs"
DAY = 86400


def _row(ctx, job_id: str, *, owner: str, lease_in_s: float | None, key: str | None = None) -> None:
    """A job row as another process would have left it."""
    now = clock.now_dt()
    jobs_repo.create(ctx.dbs.telemetry, job_id=job_id, kind="backfill", params={}, key=key, owner=owner,
                     now=now, lease_until=None if lease_in_s is None else now + timedelta(seconds=lease_in_s),
                     expired_reason=EXPIRED_REASON)
    jobs_repo.update_owned(ctx.dbs.telemetry, job_id, owner, status="running")


def test_a_server_start_fails_only_the_jobs_whose_lease_expired(dbs, tmp_path):
    ctx = make_ctx(dbs, tmp_path)
    _row(ctx, "live", owner="other-host:4242:aaaa", lease_in_s=30)
    _row(ctx, "expired", owner="dead-host:17:bbbb", lease_in_s=-1)
    _row(ctx, "no-lease", owner="old-server:1:cccc", lease_in_s=None)  # a row from before leases
    with TestClient(create_app(ctx)):
        pass  # the lifespan ran: this server started
    live = jobs_repo.get(ctx.dbs.telemetry, "live")
    assert live["status"] == "running" and live["error"] is None and live["owner"] == "other-host:4242:aaaa"
    for job_id, owner in (("expired", "dead-host:17:bbbb"), ("no-lease", "old-server:1:cccc")):
        row = jobs_repo.get(ctx.dbs.telemetry, job_id)
        assert row["status"] == "failed", job_id
        assert row["error"].startswith("interrupted:") and "lease" in row["error"] and owner in row["error"]


def test_the_runner_renews_the_lease_while_a_slow_job_runs(dbs, tmp_path):
    ctx = make_ctx(dbs, tmp_path)
    runner = JobRunner(ctx, owner="me:1:aaaa", lease_s=1.5, renew_s=0.25)
    other = JobRunner(ctx, owner="you:2:bbbb")
    seen = []

    async def slow(report):
        for i in range(10):  # 3 s: two leases long
            await asyncio.sleep(0.3)
            report({"step": i})
        return {"done": True}

    async def main():
        await runner.recover()
        job_id = runner.submit("slow", {}, slow, key=("slow", 1))
        for _ in range(6):
            await asyncio.sleep(0.35)
            row = await asyncio.to_thread(runner.get, job_id)
            seen.append((clock.now_dt(), row["lease_expires_at"], row["status"]))
            # another server starting now must see a live job
            assert await other.recover() == 0
        await runner.wait_all()
        return job_id

    job_id = asyncio.run(main())
    row = jobs_repo.get(ctx.dbs.telemetry, job_id)
    assert row["status"] == "succeeded" and row["result"] == {"done": True} and row["progress"] == {"step": 9}
    assert row["owner"] == "me:1:aaaa"
    leases = [_aware(lease) for _, lease, _ in seen]
    assert all(status == "running" for _, _, status in seen)
    assert all(lease > at for at, lease in zip((at for at, _, _ in seen), leases))  # never lapsed
    assert leases[-1] - leases[0] >= timedelta(seconds=0.8)  # it moved on: renewed, not just long


def _aware(dt):
    from datetime import timezone

    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def test_a_live_key_is_refused_across_runners_and_a_dead_holder_is_not(dbs, tmp_path):
    ctx = make_ctx(dbs, tmp_path)
    first, second = JobRunner(ctx, owner="a:1:aaaa"), JobRunner(ctx, owner="b:2:bbbb")
    release = None

    async def held(report):
        await release.wait()
        return {}

    async def main():
        nonlocal release
        release = asyncio.Event()
        job_id = await first.start("backfill", {"plant_id": 7}, held, key=("backfill", 7))
        assert await asyncio.to_thread(second.running, "backfill", 7)
        with pytest.raises(JobAlreadyRunning):
            await second.start("backfill", {"plant_id": 7}, held, key=("backfill", 7))
        release.set()
        await first.wait_all()
        assert not await asyncio.to_thread(second.running, "backfill", 7)
        again = await second.start("backfill", {"plant_id": 7}, held, key=("backfill", 7))
        await second.wait_all()
        return job_id, again

    job_id, again = asyncio.run(main())
    assert jobs_repo.get(ctx.dbs.telemetry, job_id)["status"] == "succeeded"
    assert jobs_repo.get(ctx.dbs.telemetry, again)["status"] == "succeeded"
    # a holder whose worker died (lease expired) does not block the key: it is failed
    _row(ctx, "dead", owner="gone:3:cccc", lease_in_s=-1, key="backfill:8")
    assert not second.running("backfill", 8)

    async def once():
        jid = await second.start("backfill", {"plant_id": 8}, lambda report: asyncio.sleep(0, {}), key=("backfill", 8))
        await second.wait_all()
        return jid

    new = asyncio.run(once())
    assert jobs_repo.get(ctx.dbs.telemetry, new)["status"] == "succeeded"
    dead = jobs_repo.get(ctx.dbs.telemetry, "dead")
    assert dead["status"] == "failed" and "gone:3:cccc" in dead["error"]


def test_submit_from_a_worker_thread_runs_the_work_on_the_runner_loop(dbs, tmp_path):
    """As a sync route in FastAPI's threadpool would call it."""
    ctx = make_ctx(dbs, tmp_path)
    runner = JobRunner(ctx)
    ran_on = []

    async def work(report):
        ran_on.append(threading.get_ident())
        return {"ok": 1}

    async def main():
        await runner.recover()
        job_id = await asyncio.to_thread(runner.submit, "thread", {}, work)
        await asyncio.sleep(0)  # the loop picks up the task scheduled from the thread
        await runner.wait_all()
        return job_id, threading.get_ident()

    job_id, loop_thread = asyncio.run(main())
    assert ran_on == [loop_thread]
    assert jobs_repo.get(ctx.dbs.telemetry, job_id)["status"] == "succeeded"


def test_the_jobs_package_keeps_no_module_level_registry():
    """Module-level dicts, sets or lists in jobs/ would be state of one process."""
    mutable_calls = {"dict", "set", "list", "defaultdict", "OrderedDict", "WeakValueDictionary", "WeakSet",
                     "deque", "Counter"}
    found = []
    for path in sorted(JOBS_SRC.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            if isinstance(value, (ast.Dict, ast.Set, ast.List, ast.DictComp, ast.SetComp, ast.ListComp)) or (
                    isinstance(value, ast.Call) and getattr(value.func, "id", getattr(value.func, "attr", None))
                    in mutable_calls):
                found.append(f"{path.name}:{node.lineno}")
    assert not found, found
    # nor does a runner keep which keys run (two runners see each other's jobs: test above)
    assert not any(isinstance(v, dict) for v in vars(JobRunner(None)).values())


PLANTS = [WorldPlant(301, "solarman", "71000001", "UTC", CLOUD_NOW - 3 * DAY),
          WorldPlant(302, "sungrow", "71000002", "Europe/Berlin", CLOUD_NOW - 3 * DAY)]


def test_sync_and_backfill_never_query_the_database_on_the_event_loop(dbs, tmp_path):
    ctx = make_ctx(dbs, tmp_path)
    with BackgroundCloud(cloud_config(PLANTS)) as cloud:
        set_up(ctx, cloud.base_url, PLANTS)
        loop_threads, queries = set(), []

        def record(*_args, **_kw):
            queries.append(threading.get_ident())

        engines = (ctx.dbs.main, ctx.dbs.main_reader, ctx.dbs.telemetry)
        for e in engines:
            event.listen(e, "before_cursor_execute", record)

        async def main():
            loop_threads.add(threading.get_ident())
            await backfill_plant(ctx, 301, now=CLOUD_NOW - DAY)
            return await sync_all(ctx, now=CLOUD_NOW)

        try:
            result = asyncio.run(main())
        finally:
            for e in engines:
                event.remove(e, "before_cursor_execute", record)
    assert result.success and result.plantsSynced == 2
    assert queries, "the listener saw no query"
    assert not loop_threads & set(queries), "a database call ran on the event loop's thread"


def test_lease_constants_leave_room_for_missed_renewals():
    from wattline.jobs import runner

    assert runner.LEASE_S >= 3 * runner.RENEW_S
    with pytest.raises(ValueError):
        JobRunner(None, lease_s=1, renew_s=1)

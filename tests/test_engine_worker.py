"""The job engine (procrastinate on PostgreSQL) end to end, as a user runs it: jobs
deferred with ``wattline jobs defer`` are run by ``wattline worker`` processes, a
queued duplicate is refused by its queueing lock, and a job that keeps failing ends
``failed`` after its retries, listed by ``wattline jobs list --status failed``."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from helpers import queue_rows

WATTLINE = os.path.join(os.path.dirname(sys.executable), "wattline")  # the console script
pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def engine_env(pg_templates, tmp_path):
    pg, _, _ = pg_templates
    queue = pg.create()
    env = dict(os.environ, WATTLINE_JOBS_URL=pg.url(queue), WATTLINE_DATA_DIR=str(tmp_path / "data"),
               WATTLINE_LOG_LEVEL="WARNING")
    env.pop("WATTLINE_MAIN_URL", None)
    env.pop("WATTLINE_TELEMETRY_URL", None)
    return env


def cli(env, *args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([WATTLINE, *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def start_worker(env) -> subprocess.Popen:
    return subprocess.Popen([WATTLINE, "worker", "--concurrency", "2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop_workers(workers: list[subprocess.Popen]) -> None:
    """SIGTERM all (they finish what they hold), then wait for each."""
    for w in workers:
        w.terminate()
    for w in workers:
        w.wait(20)


def wait_for_jobs(env, timeout_s: int) -> None:
    """Until nothing is queued or running (``wattline jobs wait``), or fail."""
    waited = cli(env, "jobs", "wait", "--timeout", str(timeout_s), timeout=timeout_s + 30)
    assert waited.returncode == 0, waited.stderr


def run_workers_until_done(env, n: int, timeout_s: int) -> None:
    """``n`` workers until every job has ended, then stopped."""
    workers = [start_worker(env) for _ in range(n)]
    try:
        wait_for_jobs(env, timeout_s)
    finally:
        stop_workers(workers)


def jobs(env, status=None) -> list[list[str]]:
    r = cli(env, "jobs", "list", *(["--status", status] if status else []))
    assert r.returncode == 0, r.stderr
    return [line.split("\t") for line in r.stdout.splitlines() if line.strip()]


def test_workers_run_deferred_jobs_once_and_a_failing_one_ends_failed(engine_env):
    env = engine_env
    assert cli(env, "db", "upgrade").returncode == 0
    first = cli(env, "jobs", "defer", "poll")
    assert first.returncode == 0 and "deferred job" in first.stdout, first.stderr
    again = cli(env, "jobs", "defer", "poll")  # the same job already queued: its queueing lock refuses it
    assert again.returncode == 0 and "already queued" in again.stdout, again.stderr
    bad = cli(env, "jobs", "defer", "system-backfill", "--system", "999", "--since", "2026-01-01T00:00:00Z")
    assert bad.returncode == 0, bad.stderr
    run_workers_until_done(env, 2, 90)
    rows = jobs(env)
    polls = [r for r in rows if r[1] == "poll" and '"shard"' not in r[4]]  # not the minute's shards
    assert len(polls) == 1 and polls[0][2] == "succeeded" and polls[0][3] == "attempts=1", rows
    failed = jobs(env, "failed")
    assert [r[1] for r in failed] == ["system_backfill"], rows
    assert failed[0][3] == "attempts=4"  # the first run and its 3 retries, then failed: visible, not silent
    assert all(r[2] == "succeeded" for r in rows if r[1] != "system_backfill"), rows  # periodic polls too
    # the same failure over the API (admin only)
    from fastapi.testclient import TestClient

    from wattline.api.app import create_app
    from wattline.config import Settings
    from wattline.context import open_context
    from wattline.security.sessions import COOKIE_NAME, issue_session
    from wattline.security.users import create_user, get_user_principal

    app_ctx = open_context(Settings(data_dir=env["WATTLINE_DATA_DIR"], jobs_url=env["WATTLINE_JOBS_URL"]))
    try:
        with app_ctx.dbs.main.begin() as conn:
            create_user(conn, "root", "a long test password", "admin")
            cookie = issue_session(app_ctx.settings.encryption_key, get_user_principal(conn, "root"))
        with TestClient(create_app(app_ctx)) as client:
            body = client.get("/api/admin/engine-jobs", params={"status": "failed"},
                              cookies={COOKIE_NAME: cookie}).json()
            assert body["configured"] and [j["task"] for j in body["jobs"]] == ["system_backfill"], body
            assert body["jobs"][0]["attempts"] == 4 and '"system_id": 999' in body["jobs"][0]["args"]
            one = client.get(f"/api/admin/engine-jobs/{body['jobs'][0]['id']}", cookies={COOKIE_NAME: cookie}).json()
            assert one["status"] == "failed" and one["error"], one  # the worker kept its last run's error
            # followed as any job: the failed one with its error, the poll with its report
            failed_job = client.get(f"/api/jobs/engine-{one['id']}", cookies={COOKIE_NAME: cookie}).json()
            assert failed_job["status"] == "failed" and failed_job["error"] == one["error"], failed_job
            assert failed_job["result"] is None and failed_job["params"]["system_id"] == 999
            poll_job = client.get(f"/api/jobs/engine-{polls[0][0]}", cookies={COOKIE_NAME: cookie}).json()
            assert poll_job["status"] == "succeeded" and poll_job["error"] is None, poll_job
            assert set(poll_job["result"]) >= {"polled", "readings"}, poll_job  # poll_once's report
            assert client.get("/api/admin/engine-jobs").status_code == 401
    finally:
        app_ctx.close()


def test_without_the_setting_the_jobs_commands_say_jobs_run_in_process(tmp_path):
    env = dict(os.environ, WATTLINE_DATA_DIR=str(tmp_path / "data"))
    env.pop("WATTLINE_JOBS_URL", None)
    r = cli(env, "jobs", "list")
    assert r.returncode != 0 and "WATTLINE_JOBS_URL is not set" in (r.stdout + r.stderr)
    assert "Traceback" not in r.stderr


def test_with_the_engine_poll_backfill_and_sync_all_defer_instead_of_running(engine_env):
    env = engine_env
    assert cli(env, "db", "upgrade").returncode == 0
    for args in (("poll", "--once"), ("backfill", "7"), ("sync-all",)):
        r = cli(env, *args)
        assert r.returncode == 0 and '"deferred": ' in r.stdout and '"deferred": null' not in r.stdout, (args, r)
    again = cli(env, "backfill", "7")  # the same plant already queued
    assert again.returncode == 0 and '"deferred": null' in again.stdout and "already queued" in again.stdout
    queued = jobs(env, "todo")
    assert sorted(r[1] for r in queued) == ["backfill", "poll", "sync"], queued


def _doing(queue_url: str, task: str) -> int:
    (row,) = queue_rows(queue_url, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing' "
                                   "AND task_name = :t", t=task)
    return row[0]


def _running(queue_url: str, task: str) -> tuple[int, int]:
    """(job id, worker id) of the one running job of ``task``."""
    (row,) = queue_rows(queue_url, "SELECT id, worker_id FROM procrastinate_jobs WHERE status = 'doing' "
                               "AND task_name = :t", t=task)
    return row[0], row[1]


def _held_by(queue_url: str, job_id: int) -> int | None:
    (row,) = queue_rows(queue_url, "SELECT status::text, worker_id FROM procrastinate_jobs WHERE id = :j", j=job_id)
    return row[1] if row[0] == "doing" else None


def _intervals_by_lock(queue_url: str) -> dict[str, list[tuple]]:
    """(start, end) of every run of every job, by the job's lock, from procrastinate's events."""
    rows = queue_rows(queue_url, "SELECT j.lock, e.job_id, e.type::text, e.at FROM procrastinate_events e "
                                 "JOIN procrastinate_jobs j ON j.id = e.job_id WHERE j.lock IS NOT NULL "
                                 "ORDER BY e.at, e.id")
    out: dict[str, list[tuple]] = {}
    open_runs: dict[int, object] = {}
    for lock, job_id, kind, at in rows:
        if kind == "started":
            open_runs[job_id] = at
        elif job_id in open_runs and kind in ("succeeded", "failed", "deferred_for_retry", "retried", "aborted"):
            out.setdefault(lock, []).append((open_runs.pop(job_id), at))
    assert not open_runs, open_runs  # every run ended
    return out


def test_a_killed_workers_backfill_completes_on_another_and_one_plant_is_never_run_twice_at_once(
        pg_templates, tmp_path):
    import asyncio
    import signal

    from wattline.store.engines import open_databases
    from world import WorldPlant, cloud_config, env_for, make_ctx, set_up, snapshot, CLOUD_NOW
    from wattline.jobs.backfill import backfill_plant
    from wattline.simulator.vendor_cloud.server import BackgroundCloud
    from wattline.store import leases_repo

    pg, main_t, tel_t = pg_templates

    def make_pg(_):  # a fresh migrated pair (conftest's make_pg: "conftest" is ambiguous with tests/vendors/)
        return open_databases(pg.url(pg.create(main_t)), pg.url(pg.create(tel_t)))
    plants = [WorldPlant(123, "solarman", "64786338", "Europe/Berlin", CLOUD_NOW - 90 * 86400),
              WorldPlant(124, "solarman", "64786339", "UTC", CLOUD_NOW - 30 * 86400)]
    killed_ctx = make_ctx(make_pg(pg_templates), tmp_path / "killed")
    clean_ctx = make_ctx(make_pg(pg_templates), tmp_path / "clean")
    queue_url = pg.url(pg.create())
    with BackgroundCloud(cloud_config(plants, latency_ms=40)) as cloud:
        set_up(killed_ctx, cloud.base_url, plants)
        set_up(clean_ctx, cloud.base_url, plants)
        # a heartbeat every 1.5 s: a worker missing three (4.5 s) is dead; a shorter wait than
        # three heartbeats would requeue a live worker's job too (and hide two runs at once).
        # A short lease: the killed worker's plant is free again 4 s after its last renewal
        env = dict(env_for(killed_ctx), WATTLINE_JOBS_URL=queue_url, WATTLINE_LOG_LEVEL="WARNING",
                   WATTLINE_WORKER_HEARTBEAT_S="1.5", WATTLINE_LEASE_S="4")
        assert cli(env, "jobs", "defer", "backfill", "--plant", "123").returncode == 0
        first = start_worker(env)
        workers = []
        try:
            deadline = time.monotonic() + 60  # kill it once it is fetching plant 123
            while (_doing(queue_url, "backfill") == 0 or not sum(cloud.state.stats.served_data_pages().values())) \
                    and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)
            killed_job, killed_worker = _running(queue_url, "backfill")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            # it held the plant's lease, which nobody released
            assert f"/{first.pid}/" in leases_repo.holders(killed_ctx.dbs.telemetry, 0).get("plant:123", "")
            workers = [start_worker(env) for _ in range(3)]
            # more backfills of both plants: the plant's lock keeps them one at a time
            for plant in ("123", "124", "124"):
                assert cli(env, "jobs", "defer", "backfill", "--plant", plant).returncode == 0
            deadline = time.monotonic() + 90  # no heartbeat from the killed worker: requeued
            while _held_by(queue_url, killed_job) == killed_worker and time.monotonic() < deadline:
                # by this command or by a worker's own minute check, whichever comes first
                r = cli(env, "jobs", "retry-stalled")
                assert r.returncode == 0, r.stderr
                time.sleep(1)
            assert _held_by(queue_url, killed_job) != killed_worker, "the killed worker's job was never requeued"
            wait_for_jobs(env, 150)
        finally:
            stop_workers(workers)
        for plant in (123, 124):
            assert asyncio.run(backfill_plant(clean_ctx, plant)).success
    rows = jobs(env)
    backfills = [r for r in rows if r[1] == "backfill"]
    assert len(backfills) == 4 and all(r[2] == "succeeded" for r in backfills), rows
    by_lock = _intervals_by_lock(queue_url)
    assert len(by_lock["plant:123"]) >= 3 and len(by_lock["plant:124"]) == 2, by_lock  # the killed run counts
    for lock, runs in by_lock.items():
        runs.sort()
        assert all(a[1] <= b[0] for a, b in zip(runs, runs[1:])), (lock, runs)  # never two at once
    a, b = snapshot(killed_ctx), snapshot(clean_ctx)
    for table in ("readings", "ledger", "aggregates", "raw", "plants"):
        assert a[table] == b[table], table  # the killed run's result equals an uninterrupted one
    assert leases_repo.holders(killed_ctx.dbs.telemetry, 0) == {}  # the dead one's expired and was taken


def _pg_world(pg_templates, tmp_path, name):
    from wattline.store.engines import open_databases
    from world import make_ctx

    pg, main_t, tel_t = pg_templates
    return make_ctx(open_databases(pg.url(pg.create(main_t)), pg.url(pg.create(tel_t))), tmp_path / name)


def _run_spans(ctx, sync_type: str) -> dict[int, list[tuple[int, int]]]:
    """plant id -> [start, end] (epoch ms) of each run row of ``sync_type`` (a backfill's:
    from holding the plant's lease to its summaries written)."""
    from test_resource_leases import _ms

    with ctx.dbs.telemetry.connect() as conn:
        rows = conn.exec_driver_sql("SELECT plant_id, started_at, completed_at FROM vendor_sync_logs "
                                    f"WHERE sync_type = '{sync_type}' AND plant_id IS NOT NULL").all()
    out: dict[int, list] = {}
    for pid, a, b in rows:
        out.setdefault(pid, []).append((_ms(a), _ms(b)))
    return out


def _apart(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[1] <= b[0] or b[1] <= a[0]


def test_a_sync_and_a_backfill_of_one_plant_on_three_workers_never_overlap_and_end_as_one_after_the_other(
        pg_templates, tmp_path, set_clock):
    import asyncio

    from test_resource_leases import call_spans
    from wattline import clock
    from wattline.jobs.backfill import backfill_plant
    from wattline.jobs.sync import sync_all
    from wattline.simulator.vendor_cloud.server import BackgroundCloud
    from world import CLOUD_NOW, WorldPlant, cloud_config, env_for, set_up, snapshot

    plants = [WorldPlant(123, "solarman", "64786338", "Europe/Berlin", CLOUD_NOW - 90 * 86400),
              WorldPlant(124, "solarman", "64786339", "UTC", CLOUD_NOW - 30 * 86400)]
    ctx, clean = _pg_world(pg_templates, tmp_path, "workers"), _pg_world(pg_templates, tmp_path, "clean")
    set_clock(CLOUD_NOW + 600)  # the sync's last day is the clouds' (the workers' clock too)
    queue_url = pg_templates[0].url(pg_templates[0].create())
    with BackgroundCloud(cloud_config(plants, latency_ms=40)) as cloud:
        set_up(ctx, cloud.base_url, plants)
        set_up(clean, cloud.base_url, plants)
        env = dict(env_for(ctx), WATTLINE_JOBS_URL=queue_url, WATTLINE_LOG_LEVEL="WARNING",
                   WATTLINE_CLOCK_OFFSET_S=repr(clock.now() - time.time()))
        env.pop("WATTLINE_CLOCK", None)
        for args in (("backfill", "--plant", "123"), ("sync",), ("backfill", "--plant", "124")):
            assert cli(env, "jobs", "defer", *args).returncode == 0
        run_workers_until_done(env, 3, 240)
        asyncio.run(backfill_plant(clean, 123))  # the reference: one after the other
        asyncio.run(backfill_plant(clean, 124))
        asyncio.run(sync_all(clean))
    rows = jobs(env)
    assert all(r[2] == "succeeded" for r in rows if r[1] in ("backfill", "sync")), rows
    backfills, syncs = _run_spans(ctx, "backfill"), call_spans(ctx, "daily_sync")
    for pid in (123, 124):
        (backfill,) = backfills[pid]
        assert _apart(backfill, syncs[pid]), (pid, backfill, syncs[pid])  # never worked on by both at once
    a, b = snapshot(ctx), snapshot(clean)
    for table in ("readings", "ledger", "aggregates", "raw", "plants"):
        assert a[table] == b[table], table
    from wattline.store import leases_repo

    assert leases_repo.holders(ctx.dbs.telemetry, 0) == {}  # every lease released


def test_a_systems_backfill_and_its_polls_on_three_workers_never_overlap(pg_templates, tmp_path, set_clock):
    import asyncio

    from test_poll import SLOW, add, sessions
    from wattline import clock
    from wattline.jobs.engine import defer
    from wattline.security.users import create_user
    from wattline.simulator.vendor_cloud.server import BackgroundCloud
    from wattline.store import sessions_repo
    from world import CLOUD_NOW, cloud_config, env_for

    ctx = _pg_world(pg_templates, tmp_path, "systems")
    set_clock(CLOUD_NOW)
    queue_url = pg_templates[0].url(pg_templates[0].create())
    with ctx.dbs.main.begin() as conn:
        create_user(conn, "alice", "a long test password", "user")
    with BackgroundCloud(cloud_config([SLOW], latency_ms=150)) as cloud:
        sid = add(ctx, SLOW, cloud.base_url, "slow")
        env = dict(env_for(ctx), WATTLINE_JOBS_URL=queue_url, WATTLINE_LOG_LEVEL="WARNING",
                   WATTLINE_CLOCK_OFFSET_S=repr(clock.now() - time.time()))
        env.pop("WATTLINE_CLOCK", None)
        since = CLOUD_NOW - 120 * 86400
        manual_poll = dict(lock="poll", queueing_lock="poll", url=queue_url, cause="USER", force=True)
        asyncio.run(defer("poll", **manual_poll))
        assert cli(env, "jobs", "defer", "system-backfill", "--system", str(sid), "--since",
                   str(since)).returncode == 0
        workers = [start_worker(env) for _ in range(3)]
        try:
            deadline = time.monotonic() + 120  # once the backfill holds the system, poll it again
            while sessions_repo.poll_states(ctx.dbs.telemetry, [sid]).get(sid, {}).get("lease_holder") is None \
                    and time.monotonic() < deadline:
                time.sleep(0.1)
            asyncio.run(defer("poll", **manual_poll))
            wait_for_jobs(env, 240)
            asyncio.run(defer("poll", **manual_poll))  # the backfill done: this one polls it
            wait_for_jobs(env, 240)
        finally:
            stop_workers(workers)
    rows = jobs(env)
    assert all(r[2] == "succeeded" for r in rows if r[1] in ("system_backfill", "poll")), rows
    (backfill,) = _run_spans(ctx, "backfill")[sid]
    polls = [(s["started_at_ms"], s["started_at_ms"] + s["duration_ms"]) for s in sessions(ctx, sid)]
    assert polls and all(_apart(backfill, p) for p in polls), (backfill, polls)  # never at once
    state = sessions_repo.poll_states(ctx.dbs.telemetry, [sid])[sid]
    assert state["lease_holder"] is None and state["polling_until_ms"] is None
    # the poll deferred while the backfill held the system was skipped (unless it ran after)
    assert state["skipped_overruns"] >= 1 or any(p[0] >= backfill[1] for p in polls), (state, polls, backfill)


def test_an_engine_backfill_shows_its_progress_while_it_runs_and_its_result_after(pg_templates, tmp_path, set_clock):
    """A backfill deferred over the API to a real worker: ``/api/jobs/engine-{id}`` shows
    its chunks advancing (the in-process shape) before it ends, the jobs page lists it as
    running with them, and after it the result beside the last progress."""
    from fastapi.testclient import TestClient

    from wattline import clock
    from wattline.api.app import create_app
    from wattline.context import AppContext
    from wattline.security import tokens
    from wattline.security.sessions import COOKIE_NAME, issue_session
    from wattline.security.users import create_user, get_user_principal
    from wattline.simulator.vendor_cloud.server import BackgroundCloud
    from world import CLOUD_NOW, WorldPlant, cloud_config, env_for, set_up

    plants = [WorldPlant(123, "solarman", "64786338", "UTC", CLOUD_NOW - 120 * 86400)]  # 18 chunks of 7 days
    ctx = _pg_world(pg_templates, tmp_path, "progress")
    set_clock(CLOUD_NOW + 600)  # the backfill ends at the clouds' now (the worker's clock too)
    queue_url = pg_templates[0].url(pg_templates[0].create())
    api_ctx = AppContext(ctx.settings.model_copy(update={"jobs_url": queue_url}), ctx.dbs, ctx.pipeline)
    with ctx.dbs.main.begin() as conn:
        root = {"Authorization": "Bearer " + tokens.create_token(conn, "root token", "superadmin")}
        create_user(conn, "ann", "a long test password", "viewer")
        cookie = {COOKIE_NAME: issue_session(ctx.settings.encryption_key, get_user_principal(conn, "ann"))}
    seen, page = [], None
    with BackgroundCloud(cloud_config(plants, latency_ms=60)) as cloud, TestClient(create_app(api_ctx)) as client:
        set_up(ctx, cloud.base_url, plants)
        env = dict(env_for(ctx), WATTLINE_JOBS_URL=queue_url, WATTLINE_LOG_LEVEL="WARNING",
                   WATTLINE_CLOCK_OFFSET_S=repr(clock.now() - time.time()))
        env.pop("WATTLINE_CLOCK", None)
        started = client.post("/api/telemetry/plant/123/backfill", headers=root)
        assert started.status_code == 202 and started.json()["deferred"], started.text
        url = started.json()["jobUrl"]
        worker = start_worker(env)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                job = client.get(url, headers=root).json()
                if job["status"] != "running" and seen:
                    break
                if job["status"] == "running" and job["progress"]:
                    seen.append(job["progress"])
                    if page is None:
                        page = client.get("/jobs", cookies=cookie).text
                time.sleep(0.2)
            wait_for_jobs(env, 120)
        finally:
            stop_workers([worker])
        job = client.get(url, headers=root).json()
    assert seen, "no progress was seen while the backfill ran"
    assert set(seen[0]) == {"chunk", "totalChunks", "records", "pausedUntil"}, seen[0]  # as in-process
    assert any(p["chunk"] < p["totalChunks"] for p in seen), seen  # before it finished
    assert [p["chunk"] for p in seen] == sorted(p["chunk"] for p in seen), seen  # the latest wins, in order
    assert 'data-testid="engine-running-table"' in page and ">backfill<" in page, page
    assert "chunk " in page and "/18 · " in page, page
    result = job["result"]
    assert job["status"] == "succeeded" and job["error"] is None and result["success"], job
    assert result["chunksProcessed"] == 18 and result["recordsSynced"] > 0, result
    # the last report is written before the outcome: the progress ends where the result does
    assert job["progress"] == {"chunk": 18, "totalChunks": 18, "records": result["recordsSynced"],
                               "pausedUntil": None}, job


def test_the_minutes_poll_shards_spread_over_the_workers(pg_templates, tmp_path, set_clock):
    """Four shard jobs, two workers with one poll slot each: both workers poll (with the
    jobs' shared slots one worker took every shard of a tick while the other idled)."""
    import asyncio

    from test_poll import SLOW, add
    from wattline import clock
    from wattline.jobs.engine import defer
    from wattline.security.users import create_user
    from wattline.simulator.vendor_cloud.server import BackgroundCloud
    from world import CLOUD_NOW, WorldPlant, cloud_config, env_for

    ctx = _pg_world(pg_templates, tmp_path, "shards")
    set_clock(CLOUD_NOW)
    queue_url = pg_templates[0].url(pg_templates[0].create())
    with ctx.dbs.main.begin() as conn:
        create_user(conn, "alice", "a long test password", "user")
    plants = [WorldPlant(0, "sungrow", f"7100002{i}", "UTC", SLOW.start) for i in range(4)]
    with BackgroundCloud(cloud_config(plants, latency_ms=1000)) as cloud:
        ids = [add(ctx, p, cloud.base_url, f"shard{i}") for i, p in enumerate(plants)]
        assert sorted(i % 4 for i in ids) == [0, 1, 2, 3]  # one system a shard
        env = dict(env_for(ctx), WATTLINE_JOBS_URL=queue_url, WATTLINE_LOG_LEVEL="WARNING",
                   WATTLINE_CLOCK_OFFSET_S=repr(clock.now() - time.time()))
        env.pop("WATTLINE_CLOCK", None)
        workers = [subprocess.Popen([WATTLINE, "worker", "--concurrency", "2", "--poll-jobs", "1"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                   for _ in range(2)]
        try:
            deadline = time.monotonic() + 60  # both processes' two procrastinate workers up
            while time.monotonic() < deadline:
                try:
                    if queue_rows(queue_url, "SELECT count(*) FROM procrastinate_workers")[0][0] >= 4:
                        break
                except Exception:  # noqa: BLE001 - the schema not applied yet
                    pass
                time.sleep(0.2)
            for k in range(4):
                # the workers' own minute tick may queue the same shards meanwhile: no queueing lock here
                asyncio.run(defer("poll", lock=f"poll:{k}/4", url=queue_url,
                                  cause="CRON", force=True, shard=k, shards=4))
            wait_for_jobs(env, 120)
            rows = queue_rows(queue_url, "SELECT status::text, worker_id, queue_name FROM procrastinate_jobs "
                                         "WHERE task_name = 'poll'")
        finally:
            stop_workers(workers)
    assert len(rows) >= 4 and all(r[0] == "succeeded" and r[2] == "poll" for r in rows), rows
    by_worker: dict = {}
    for _, worker_id, _ in rows:
        by_worker[worker_id] = by_worker.get(worker_id, 0) + 1
    assert len(by_worker) == 2 and None not in by_worker, by_worker  # both workers polled

"""With the job engine configured (``WATTLINE_JOBS_URL``), the API's crons and started
jobs defer to the workers (202 with the engine's job id) instead of running in the API
process; the organizations' local-time sync and reconciliation are deferred once per
organization and local day by an engine periodic task, and ``wattline serve`` no longer
schedules them; the periodic tasks are deferred once per period however many workers
run the deferrer; a failed run's error is kept. All in-process on a fresh queue
database (no worker processes: tests/test_engine_worker.py has those)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from helpers import queue_exec, queue_rows

pytestmark = pytest.mark.postgres

CRON = "a-cron-secret-for-engine-tests"


@pytest.fixture(scope="module")
def queue_template(pg_templates):
    """An empty queue database with procrastinate's schema (and ours), as a template."""
    from wattline.jobs.engine import apply_schema, engine_app

    pg, _, _ = pg_templates
    name = pg.create()

    async def apply():
        app = engine_app(pg.url(name))
        async with app.open_async():
            await apply_schema(app)

    asyncio.run(apply())
    return name


@pytest.fixture
def queue_url(pg_templates, queue_template):
    pg, _, _ = pg_templates
    return pg.url(pg.create(queue_template))


def jobs_in(url: str) -> list[tuple]:
    return queue_rows(url, "SELECT task_name, status::text, args::text, lock, queueing_lock "
                           "FROM procrastinate_jobs ORDER BY id")


@pytest.fixture
def engine_ctx(queue_url, tmp_path):
    from wattline.config import Settings
    from wattline.context import open_context

    c = open_context(Settings(data_dir=tmp_path / "data", jobs_url=queue_url, cron_secret=CRON))
    yield c
    c.close()


@pytest.fixture
def client(engine_ctx):
    from fastapi.testclient import TestClient

    from wattline.api.app import create_app
    from wattline.security import tokens

    with engine_ctx.dbs.main.begin() as conn:
        toks = {r: tokens.create_token(conn, f"{r} token", r) for r in ("admin", "superadmin")}
    with TestClient(create_app(engine_ctx)) as tc:
        tc.headers_for = {r: {"Authorization": f"Bearer {t}"} for r, t in toks.items()}
        tc.headers_for["cron"] = {"Authorization": f"Bearer {CRON}"}
        yield tc


def test_crons_and_started_jobs_defer_to_the_engine_and_nothing_runs_in_the_api(client, engine_ctx, queue_url):
    from wattline import provisioning
    from wattline.simulator.vendor_cloud.config import DEFAULT_CREDENTIALS

    cron, admin, root = (client.headers_for[k] for k in ("cron", "admin", "superadmin"))
    r = client.post("/api/cron/poll", headers=cron)
    assert r.status_code == 202 and r.json()["deferred"] and r.json()["engineJobId"] > 0, r.text
    assert r.json()["polled"] == 0  # the report's shape is kept
    again = client.post("/api/cron/poll", headers=cron)  # the same tick already queued: nothing added
    assert again.status_code == 202 and again.json()["engineJobId"] is None
    r = client.post("/api/cron/daily", json={"action": "clear"}, headers=cron)
    assert r.status_code == 202 and r.json()["job"]["status"] == "queued" and r.json()["deferred"], r.text
    assert client.post("/api/cron/daily", json={"action": "clear"}, headers=cron).status_code == 409
    assert client.post("/api/cron/daily", json={"action": "bogus"}, headers=cron).status_code in (400, 422)
    assert client.post("/api/cron/cleanup", headers=cron).status_code == 202
    r = client.post("/api/telemetry/sync-all", headers=cron)
    assert r.status_code == 202 and r.json()["jobUrl"] == f"/api/jobs/engine-{r.json()['engineJobId']}"
    assert client.post("/api/telemetry/sync-all", headers=cron).status_code == 409
    followed = client.get(r.json()["jobUrl"], headers=admin)  # as an in-process job is followed
    assert followed.status_code == 200, followed.text
    job = followed.json()
    assert job.pop("createdAt") and job.pop("updatedAt"), followed.text  # its deferral event
    assert job == {"id": r.json()["jobId"], "kind": "sync", "status": "queued", "params": {}, "progress": None,
                   "result": None, "error": None}
    engine_view = client.get(f"/api/admin/engine-jobs/{r.json()['engineJobId']}", headers=admin)
    assert engine_view.json()["task"] == "sync" and engine_view.json()["status"] == "todo"
    for missing in ("/api/admin/engine-jobs/999999", "/api/jobs/engine-999999"):
        assert client.get(missing, headers=admin).status_code == 404

    with engine_ctx.dbs.main.begin() as conn:
        provisioning.add_vendor_account(conn, engine_ctx.settings, "solarman", "solarman test",
                                        DEFAULT_CREDENTIALS["solarman"],
                                        base_url="http://127.0.0.1:9", rate_limits=provisioning.UNLIMITED)
        provisioning.add_vendor_plant(conn, "plant 7", "solarman", "123", "UTC", asset_id=7,
                                      start_operating_time=1_700_000_000)
        org = provisioning.ensure_organization(conn, "campus", "Asia/Kolkata")
        provisioning.add_classroom(conn, "CR-101", organization_id=org)
    r = client.post("/api/telemetry/plant/7/backfill", headers=root)
    assert r.status_code == 202 and r.json()["deferred"] and r.headers["Location"] == r.json()["jobUrl"], r.text
    assert client.post("/api/telemetry/plant/7/backfill", headers=root).status_code == 409
    body = {"classroom": "CR-101", "start": "2025-11-05", "end": "2025-11-07"}
    r = client.post("/api/power-analytics/recalculate", json=body, headers=admin)
    assert r.status_code == 202 and r.json()["deferred"] and r.json()["job"].startswith("engine-"), r.text
    assert client.post("/api/power-analytics/recalculate", json=body, headers=admin).status_code == 409
    assert client.post("/api/power-analytics/recalculate", json=dict(body, end="2025-11-01"),
                       headers=admin).status_code == 400  # bad input: nothing queued
    r = client.post("/api/power-analytics/cost-versions", headers=admin,
                    json={"cost_per_kwh": "0.25", "effective_from": "2025-01-01T00:00:00Z", "currency": "EUR"})
    assert r.status_code == 201 and r.json()["deferred"] and r.json()["job"].startswith("/api/jobs/engine-"), \
        r.text

    rows = {t: (args, lock, qlock) for t, status, args, lock, qlock in jobs_in(queue_url) if status == "todo"}
    assert set(rows) == {"poll", "daily", "cleanup", "sync", "backfill", "recalculate_classroom", "reprice"}, rows
    assert rows["daily"][0] == '{"action": "clear"}'
    assert rows["backfill"][1] == "plant:7"  # one plant, one worker at a time
    assert rows["recalculate_classroom"][1] == f"reconcile:{org}"  # never beside its organization's reconcile
    assert len(jobs_in(queue_url)) == 7
    assert client.get("/api/jobs", headers=admin).json()["jobs"] == []  # nothing ran in the API process


def test_without_the_engine_the_cron_runs_in_process(tmp_path):
    from fastapi.testclient import TestClient

    from wattline.api.app import create_app
    from wattline.config import Settings
    from wattline.context import open_context

    c = open_context(Settings(data_dir=tmp_path / "data", cron_secret=CRON))
    try:
        with TestClient(create_app(c)) as tc:
            r = tc.post("/api/cron/cleanup", headers={"Authorization": f"Bearer {CRON}"})
            assert r.status_code == 200 and not r.json()["deferred"] and r.json()["job"]["status"] == "succeeded"
            r = tc.post("/api/cron/poll", headers={"Authorization": f"Bearer {CRON}"})
            assert r.status_code == 200 and r.json()["deferred"] is False and r.json()["engineJobId"] is None
    finally:
        c.close()


def _at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp())


def test_org_runs_are_due_after_their_local_time_once_per_local_day():
    from wattline.jobs.org_schedule import due_runs

    sync_orgs = [(1, "berlin", "Europe/Berlin", None), (2, "often", "UTC", 60)]
    rec_orgs = [{"id": 1, "name": "berlin", "timezone": "Europe/Berlin"}]
    before = due_runs(sync_orgs[:1], rec_orgs, _at("2026-12-01T23:10:00"))  # 00:10 in Berlin
    assert before == []  # neither today's 00:15 nor 02:00 has passed there
    now = _at("2026-12-02T01:05:00")  # 02:05 in Berlin
    after = {r.run_key: r for r in due_runs(sync_orgs, rec_orgs, now)}
    assert set(after) == {"sync:1:2026-12-02", "sync:2:2026-12-02", f"sync:2:every60m:{now // 3600}",
                          "reconcile:1:2026-12-02"}
    assert after["reconcile:1:2026-12-02"].kwargs == {"organization": "berlin", "day": "2026-12-01"}
    assert after["sync:1:2026-12-02"].kwargs == {"organization_id": 1, "only_due": True}


def test_the_org_schedule_defers_each_days_run_once_and_serve_no_longer_schedules_it(engine_ctx, queue_url):
    from wattline.jobs.engine import engine_app
    from wattline.jobs.org_schedule import defer_due
    from wattline.jobs.scheduler import build_scheduler
    from wattline import provisioning

    with engine_ctx.dbs.main.begin() as conn:
        org = provisioning.ensure_organization(conn, "berlin", "Europe/Berlin")
        conn.exec_driver_sql(f"UPDATE organizations SET auto_sync_enabled = (id = {int(org)})")
    now = _at("2026-12-02T01:05:00")

    async def tick(at):
        app = engine_app(queue_url)
        async with app.open_async():
            return await defer_due(app, engine_ctx, at)

    first = asyncio.run(tick(now))
    rows = jobs_in(queue_url)
    assert len(first) == 2 and {r[0] for r in rows} == {"sync", "reconcile"}, rows  # the day's two runs
    rec = next(r for r in rows if r[0] == "reconcile")
    assert '"day": "2026-12-01"' in rec[2] and rec[3] == f"reconcile:{org}"  # Berlin's yesterday
    assert asyncio.run(tick(now + 300)) == []  # the next ticks of the day: already deferred
    queue_exec(queue_url, "UPDATE procrastinate_jobs SET status = 'succeeded'")
    assert asyncio.run(tick(now + 3600)) == []  # also once they ran (not only while queued)
    assert len(asyncio.run(tick(now + 86400))) == 2  # the next local day
    assert sorted(r[0] for r in jobs_in(queue_url)) == ["reconcile", "reconcile", "sync", "sync"]
    assert build_scheduler(engine_ctx).get_jobs() == []  # serve leaves all of it to the workers


def test_each_periodic_task_is_deferred_once_per_period_however_many_deferrers(queue_url):
    """Four workers' periodic deferrers (each its own state and connection pool) at the
    same instant: procrastinate's periodic-defers table, unique per task, periodic id and
    tick, keeps one job per task and tick."""
    import procrastinate
    from procrastinate.periodic import PeriodicDeferrer

    from wattline.jobs import engine_tasks
    from wattline.jobs.engine import conninfo

    at = _at("2026-12-06T03:30:10")  # a Sunday, 03:30:10 UTC: poll, cleanup, schedule and retry ticks

    async def worker_deferrer():
        # the tasks are bound to the module's app: give it this "worker's" own pool
        with engine_tasks.app.replace_connector(procrastinate.PsycopgConnector(conninfo=conninfo(queue_url))):
            async with engine_tasks.app.open_async():
                d = PeriodicDeferrer(registry=engine_tasks.app.periodic_registry)
                await d.defer_jobs(list(d.get_previous_tasks(at=at)))

    asyncio.run(worker_deferrer())
    # their runs done, so no queueing lock holds: only the per-tick record refuses the rest
    queue_exec(queue_url, "UPDATE procrastinate_jobs SET status = 'succeeded'")
    for _ in range(3):
        asyncio.run(worker_deferrer())
    names = sorted(r[0] for r in jobs_in(queue_url))
    assert names == ["org_schedule", "periodic_cleanup", "periodic_poll", "retry_stalled"], names
    defers = queue_rows(queue_url, "SELECT periodic_id, defer_timestamp FROM procrastinate_periodic_defers")
    assert sorted(defers) == sorted((p, at - 10) for p in ("cleanup", "org_schedule", "poll", "retry_stalled"))


def test_a_failed_engine_job_shows_with_its_error_on_the_jobs_page_and_in_the_metrics(engine_ctx, queue_url):
    """A run that raises leaves its error beside the job (the workers' middleware); the
    failed job is on the jobs page (admins) and counted on /metrics."""
    import procrastinate
    from fastapi.testclient import TestClient

    from wattline.api.app import create_app
    from wattline.jobs.engine import connector, record_outcome
    from wattline.security.sessions import COOKIE_NAME, issue_session
    from wattline.security.users import create_user, get_user_principal

    app = procrastinate.App(connector=connector(queue_url))  # no periodic tasks: the worker only runs this job

    @app.task(name="system_backfill")
    async def failing(system_id: int) -> None:
        raise LookupError(f"no system {system_id}")

    async def run():
        async with app.open_async():
            await failing.defer_async(system_id=999)
            await app.run_worker_async(wait=False, install_signal_handlers=False, worker_middleware=[record_outcome])

    asyncio.run(run())
    with engine_ctx.dbs.main.begin() as conn:
        create_user(conn, "root", "a long test password", "admin")
        create_user(conn, "ann", "a long test password", "viewer")
        cookies = {u: issue_session(engine_ctx.settings.encryption_key, get_user_principal(conn, u))
                   for u in ("root", "ann")}
    with TestClient(create_app(engine_ctx)) as client:
        page = client.get("/jobs", cookies={COOKIE_NAME: cookies["root"]}).text
        assert "Failed engine jobs" in page and "system_backfill" in page, page
        assert "LookupError: no system 999" in page and "{&#34;system_id&#34;: 999}" in page
        viewer = client.get("/jobs", cookies={COOKIE_NAME: cookies["ann"]}).text
        assert "Failed engine jobs" not in viewer  # the arguments are for admins
        metrics = client.get("/metrics").text
        assert 'wattline_engine_jobs{status="failed"} 1.0' in metrics
        assert 'wattline_engine_jobs{status="todo"} 0.0' in metrics


def test_db_upgrade_applies_the_queue_schema_once_and_says_so(pg_templates, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from wattline.cli import app

    pg, _, _ = pg_templates
    url = pg.url(pg.create())  # an empty queue database
    monkeypatch.setenv("WATTLINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WATTLINE_JOBS_URL", url)
    monkeypatch.delenv("WATTLINE_MAIN_URL", raising=False)
    monkeypatch.delenv("WATTLINE_TELEMETRY_URL", raising=False)
    for _ in range(2):  # the second run finds it applied
        r = CliRunner().invoke(app, ["db", "upgrade"])
        assert r.exit_code == 0 and "job engine queue" in r.output and "up to date" in r.output, r.output
        assert "postgresql" not in r.output  # never the URL
    assert queue_rows(url, "SELECT to_regclass('procrastinate_jobs') IS NOT NULL, "
                           "to_regclass('wattline_engine_errors') IS NOT NULL") == [(True, True)]


def test_a_task_whose_job_row_failed_fails_on_the_engine_too():
    """The daily, cleanup and reconcile tasks run the in-process job functions, which
    record a failure in their row instead of raising: the task raises it, so the engine
    retries and then shows it failed (never a silent success)."""
    from wattline.jobs.engine_tasks import _succeeded

    assert _succeeded({"id": "j1", "kind": "cleanup", "status": "succeeded"}) == {"job": "j1", "status": "succeeded"}
    with pytest.raises(RuntimeError, match="cleanup job j2 failed: disk full"):
        _succeeded({"id": "j2", "kind": "cleanup", "status": "failed", "error": "disk full"})


def test_workers_starting_together_apply_the_queue_schema_once_without_failing(pg_templates):
    # three `wattline worker` processes started at once each applied it, and two crashed
    # on a unique violation (found by bench/faults.py)
    from wattline.jobs.engine import apply_schema, engine_app

    pg, _, _ = pg_templates
    url = pg.url(pg.create())

    async def one():
        app = engine_app(url)
        async with app.open_async():
            await apply_schema(app)

    async def together():
        return await asyncio.gather(*[one() for _ in range(4)], return_exceptions=True)

    assert asyncio.run(together()) == [None] * 4
    assert queue_rows(url, "SELECT to_regclass('procrastinate_jobs') IS NOT NULL")[0][0]


def test_the_minute_tick_is_split_into_shard_jobs_that_are_not_queued_twice(queue_url, monkeypatch):
    # one tick in one worker caps a fleet's polls/min at what one Poller does (bench/workers.py)
    import procrastinate

    from wattline.jobs import engine_tasks
    from wattline.jobs.engine import conninfo
    from wattline.jobs.poll import in_shard

    monkeypatch.setenv("WATTLINE_POLL_SHARDS", "3")

    async def tick():
        with engine_tasks.app.replace_connector(procrastinate.PsycopgConnector(conninfo=conninfo(queue_url))):
            async with engine_tasks.app.open_async():
                await engine_tasks.periodic_poll(timestamp=_at("2026-12-06T03:31:00"))

    asyncio.run(tick())
    asyncio.run(tick())  # the first minute's shards still queued: refused, not doubled
    rows = queue_rows(queue_url, "SELECT lock, args->>'shard', args->>'shards' FROM procrastinate_jobs "
                                 "WHERE task_name = 'poll' ORDER BY 2")
    assert rows == [("poll:0/3", "0", "3"), ("poll:1/3", "1", "3"), ("poll:2/3", "2", "3")], rows
    assert [s for s in range(9) if in_shard(s, (1, 3))] == [1, 4, 7]
    with pytest.raises(ValueError):
        in_shard(5, (3, 3))


def test_a_dead_workers_job_already_queued_again_ends_aborted_and_frees_its_lock(queue_url):
    # a worker killed mid-poll of a shard while the next minute's shard was queued: the
    # retry hit the queueing lock every minute and the shard was never polled again
    import procrastinate

    from wattline.jobs import engine_tasks
    from wattline.jobs.engine import conninfo

    async def defer_two_and_retry():
        with engine_tasks.app.replace_connector(procrastinate.PsycopgConnector(conninfo=conninfo(queue_url))):
            async with engine_tasks.app.open_async():
                task = engine_tasks.poll.configure(lock="poll:1/4", queueing_lock="poll:1/4")
                first = await task.defer_async(cause="CRON", shard=1, shards=4)
                # its worker took it and died (a heartbeat an hour old), then the next one came
                queue_exec(queue_url, "INSERT INTO procrastinate_workers (last_heartbeat) "
                                      "VALUES (now() - interval '1 hour')")
                queue_exec(queue_url, f"UPDATE procrastinate_jobs SET status = 'doing', worker_id = "
                                      f"(SELECT max(id) FROM procrastinate_workers) WHERE id = {first}")
                second = await task.defer_async(cause="CRON", shard=1, shards=4)
                return first, second, await engine_tasks.retry_stalled_jobs(engine_tasks.app, after_s=30)

    first, second, retried = asyncio.run(defer_two_and_retry())
    assert retried == [first]
    rows = dict(queue_rows(queue_url, "SELECT id, status::text FROM procrastinate_jobs"))
    assert rows == {first: "aborted", second: "todo"}, rows  # superseded: not a failure of the task


def test_a_systems_backfill_locks_the_system_and_a_held_plants_sync_is_deferred_under_its_lock(
        queue_url, monkeypatch, tmp_path):
    # a system's backfill was deferred under "plant:ID": the namespace of the plants' jobs
    import procrastinate
    from typer.testing import CliRunner

    from wattline.cli import app
    from wattline.jobs import engine_tasks
    from wattline.jobs.engine import conninfo

    env = {"WATTLINE_JOBS_URL": queue_url, "WATTLINE_DATA_DIR": str(tmp_path / "data")}
    for args in (["system-backfill", "--system", "5", "--since", "2026-01-01T00:00:00Z"], ["backfill", "--plant", "5"]):
        r = CliRunner().invoke(app, ["jobs", "defer", *args], env=env)
        assert r.exit_code == 0 and "deferred job" in r.output, r.output

    async def defer_held():  # what a sync does with the plants their backfills hold
        with engine_tasks.app.replace_connector(procrastinate.PsycopgConnector(conninfo=conninfo(queue_url))):
            async with engine_tasks.app.open_async():
                await engine_tasks.defer_plant_syncs([5, 6])
                await engine_tasks.defer_plant_syncs([5])  # still queued: not twice

    asyncio.run(defer_held())
    rows = [(t, a, lock, q) for t, _s, a, lock, q in jobs_in(queue_url)]
    assert rows == [("system_backfill", '{"since_ts": 1767225600, "system_id": 5}', "system:5", None),
                    ("backfill", '{"plant_id": 5}', "plant:5", None),
                    ("sync", '{"plant_id": 5}', "plant:5", "sync:plant:5"),
                    ("sync", '{"plant_id": 6}', "plant:6", "sync:plant:6")], rows


def test_engine_progress_keeps_the_latest_report_written_at_most_once_a_second_and_a_failing_write_fails_nothing(
        client, queue_url, monkeypatch):
    """What a task reports (on the loop or from a worker thread) is kept beside its job by
    the workers' middleware, a write a second at most, the last one before the outcome;
    and shown at ``/api/jobs/engine-{id}``. A queue refusing the writes fails no job."""
    import procrastinate

    from wattline.jobs import engine_progress
    from wattline.jobs.engine import connector, record_outcome
    from wattline.store import engine_jobs_repo

    app = procrastinate.App(connector=connector(queue_url))  # no periodic tasks: the worker only runs these

    @app.task(name="backfill")
    async def reporting(n: int) -> dict:
        for i in range(1, n):
            engine_progress.report({"chunk": i, "totalChunks": n})
            await asyncio.sleep(0.01)
        await asyncio.to_thread(engine_progress.report, {"chunk": n, "totalChunks": n})  # from a thread
        return {"done": n}

    writes, real = [], engine_jobs_repo.record_progress

    async def counted(conn, job_id, progress_json):
        writes.append(progress_json)
        await real(conn, job_id, progress_json)

    async def refused(conn, job_id, progress_json):
        raise RuntimeError("the queue refuses")

    async def run(n: int) -> int:
        async with app.open_async():
            job_id = await reporting.defer_async(n=n)
            await app.run_worker_async(wait=False, install_signal_handlers=False, worker_middleware=[record_outcome])
        return job_id

    monkeypatch.setattr(engine_jobs_repo, "record_progress", counted)
    first = asyncio.run(run(150))  # 1.5 s of reports
    assert 2 <= len(writes) <= 4, writes  # the first at once, one a second, the last at the end
    job = client.get(f"/api/jobs/engine-{first}", headers=client.headers_for["admin"]).json()
    assert job["status"] == "succeeded" and job["result"] == {"done": 150}, job
    assert job["progress"] == {"chunk": 150, "totalChunks": 150}, job
    monkeypatch.setattr(engine_jobs_repo, "record_progress", refused)
    second = asyncio.run(run(5))
    job = client.get(f"/api/jobs/engine-{second}", headers=client.headers_for["admin"]).json()
    assert job["status"] == "succeeded" and job["result"] == {"done": 5} and job["progress"] is None, job

"""The job engine (procrastinate on PostgreSQL) end to end, as a user runs it: jobs
deferred with ``wattline jobs defer`` are run by ``wattline worker`` processes, a
queued duplicate is refused by its queueing lock, and a job that keeps failing ends
``failed`` after its retries, listed by ``wattline jobs list --status failed``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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
    workers = [start_worker(env) for _ in range(2)]
    try:
        waited = cli(env, "jobs", "wait", "--timeout", "90", timeout=120)
        assert waited.returncode == 0, waited.stderr
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(20)
    rows = jobs(env)
    polls = [r for r in rows if r[1] == "poll"]
    assert len(polls) == 1 and polls[0][2] == "succeeded" and polls[0][3] == "attempts=1", rows
    failed = jobs(env, "failed")
    assert [r[1] for r in failed] == ["system_backfill"], rows
    assert failed[0][3] == "attempts=4"  # the first run and its 3 retries, then failed: visible, not silent
    assert all(r[2] == "succeeded" for r in rows if r[1] != "system_backfill"), rows  # periodic polls too


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

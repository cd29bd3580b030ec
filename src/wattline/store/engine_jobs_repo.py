"""SQL on procrastinate's own tables (the job engine's queue), and on our three tables
beside them: the error of each failed run, the result of each job that succeeded and
the latest progress a running job reported (procrastinate records none of them)."""

from __future__ import annotations


async def schema_present(connector) -> bool:
    row = await connector.execute_query_one_async(
        "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS present")
    return bool(row["present"])


async def own_tables_present(connector) -> bool:
    row = await connector.execute_query_one_async(
        "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AND to_regclass('wattline_engine_errors') IS NOT NULL "
        "AS present")
    return bool(row["present"])


# One statement, so one transaction that first takes a lock: workers starting together
# create these one after the other (a CREATE ... IF NOT EXISTS racing another fails on
# the catalog's unique index; with four objects a worker could lose more races than it
# retries).
_OWN_TABLES = """
DO $$ BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('wattline_engine_own_tables'));
  CREATE TABLE IF NOT EXISTS wattline_engine_errors (
    job_id bigint NOT NULL, at timestamptz NOT NULL DEFAULT now(), error text NOT NULL);
  CREATE INDEX IF NOT EXISTS wattline_engine_errors_job ON wattline_engine_errors (job_id, at);
  CREATE INDEX IF NOT EXISTS wattline_jobs_run_key ON procrastinate_jobs
    (task_name, (args->>'run_key')) WHERE args ? 'run_key';
  CREATE TABLE IF NOT EXISTS wattline_engine_results (
    job_id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), result jsonb NOT NULL);
  CREATE TABLE IF NOT EXISTS wattline_engine_progress (
    job_id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), progress jsonb NOT NULL);
END $$
"""


async def ensure_own_tables(connector) -> None:
    """Idempotent: the error, result and progress tables, and an index for :func:`has_job`
    (checked first: a CREATE ... IF NOT EXISTS still locks the busy jobs table)."""
    row = await connector.execute_query_one_async(  # the newest object: a queue made before it gets it
        "SELECT to_regclass('wattline_engine_progress') IS NOT NULL AS present")
    if row["present"]:
        return
    await connector.execute_query_async(_OWN_TABLES)


async def record_error(connector, job_id: int, error: str) -> None:
    await connector.execute_query_async(
        "INSERT INTO wattline_engine_errors (job_id, error) VALUES (%(job_id)s, %(error)s)",
        job_id=job_id, error=error)


async def record_result(connector, job_id: int, result_json: str) -> None:
    """The result of the job's run that succeeded (a retried job: its last run's)."""
    await connector.execute_query_async(
        "INSERT INTO wattline_engine_results (job_id, result) VALUES (%(job_id)s, %(result)s::jsonb) "
        "ON CONFLICT (job_id) DO UPDATE SET result = EXCLUDED.result, at = now()",
        job_id=job_id, result=result_json)


async def record_progress(connector, job_id: int, progress_json: str) -> None:
    """The newest progress of a running job (one row a job: the latest report wins)."""
    await connector.execute_query_async(
        "INSERT INTO wattline_engine_progress (job_id, progress) VALUES (%(job_id)s, %(progress)s::jsonb) "
        "ON CONFLICT (job_id) DO UPDATE SET progress = EXCLUDED.progress, at = now()",
        job_id=job_id, progress=progress_json)


async def list_jobs(connector, status: str | None = None, limit: int = 200) -> list[dict]:
    rows = await connector.execute_query_all_async(
        "SELECT id, task_name, status::text AS status, lock, queueing_lock, attempts, args::text AS args "
        "FROM procrastinate_jobs WHERE (%(status)s::text IS NULL OR status::text = %(status)s) "
        "ORDER BY id DESC LIMIT %(limit)s", status=status, limit=limit)
    return [dict(r) for r in rows]


async def get_job(connector, job_id: int) -> dict | None:
    """One job with its last run's error (None if it left none), its latest progress,
    its result once it succeeded, and when it was deferred and last changed (an event
    or a progress report; UTC, naive)."""
    rows = await connector.execute_query_all_async(
        "SELECT j.id, j.task_name, j.status::text AS status, j.lock, j.queueing_lock, j.attempts, "
        " j.args::text AS args, (SELECT w.error FROM wattline_engine_errors w WHERE w.job_id = j.id "
        "  ORDER BY w.at DESC LIMIT 1) AS error, "
        " (SELECT r.result::text FROM wattline_engine_results r WHERE r.job_id = j.id) AS result, "
        " p.progress::text AS progress, "
        " (SELECT min(e.at) AT TIME ZONE 'UTC' FROM procrastinate_events e WHERE e.job_id = j.id) AS created_at, "
        " GREATEST((SELECT max(e.at) FROM procrastinate_events e WHERE e.job_id = j.id), p.at) AT TIME ZONE 'UTC' "
        "  AS updated_at "
        "FROM procrastinate_jobs j LEFT JOIN wattline_engine_progress p ON p.job_id = j.id "
        "WHERE j.id = %(job_id)s", job_id=job_id)
    return dict(rows[0]) if rows else None


async def failed_jobs(connector, limit: int = 50) -> list[dict]:
    """The failed jobs, newest first, with the time they failed and their last run's
    error (None when the run left none: the worker died, or the error table is new)."""
    rows = await connector.execute_query_all_async(
        "SELECT j.id, j.task_name, j.attempts, j.args::text AS args, "
        " (SELECT max(e.at) AT TIME ZONE 'UTC' FROM procrastinate_events e WHERE e.job_id = j.id) AS at, "
        " (SELECT w.error FROM wattline_engine_errors w WHERE w.job_id = j.id "
        "  ORDER BY w.at DESC LIMIT 1) AS error "
        "FROM procrastinate_jobs j WHERE j.status = 'failed' ORDER BY j.id DESC LIMIT %(limit)s", limit=limit)
    return [dict(r) for r in rows]


async def running_jobs(connector, limit: int = 50) -> list[dict]:
    """The running jobs, newest first, with their latest progress (None before the
    first report, or for a task that reports none) and when it was reported."""
    rows = await connector.execute_query_all_async(
        "SELECT j.id, j.task_name, p.progress::text AS progress, p.at AT TIME ZONE 'UTC' AS at "
        "FROM procrastinate_jobs j LEFT JOIN wattline_engine_progress p ON p.job_id = j.id "
        "WHERE j.status = 'doing' ORDER BY j.id DESC LIMIT %(limit)s", limit=limit)
    return [dict(r) for r in rows]


async def count_by_status(connector) -> dict[str, int]:
    rows = await connector.execute_query_all_async(
        "SELECT status::text AS status, count(*) AS n FROM procrastinate_jobs GROUP BY status")
    return {r["status"]: int(r["n"]) for r in rows}


async def has_job(connector, task_name: str, run_key: str) -> bool:
    """Whether a job of ``task_name`` with this ``run_key`` argument was ever deferred
    (any status): the once-a-day runs of the organizations' schedule."""
    row = await connector.execute_query_one_async(
        "SELECT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE task_name = %(task)s "
        "AND args ? 'run_key' AND args->>'run_key' = %(key)s) AS found", task=task_name, key=run_key)
    return bool(row["found"])


async def pending_count(connector) -> int:
    row = await connector.execute_query_one_async(
        "SELECT count(*) AS n FROM procrastinate_jobs WHERE status IN ('todo', 'doing')")
    return int(row["n"])

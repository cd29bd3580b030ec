"""SQL on procrastinate's own tables (the job engine's queue)."""

from __future__ import annotations


async def schema_present(connector) -> bool:
    row = await connector.execute_query_one_async(
        "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS present")
    return bool(row["present"])


async def list_jobs(connector, status: str | None = None, limit: int = 200) -> list[dict]:
    rows = await connector.execute_query_all_async(
        "SELECT id, task_name, status::text AS status, lock, queueing_lock, attempts, args::text AS args "
        "FROM procrastinate_jobs WHERE (%(status)s::text IS NULL OR status::text = %(status)s) "
        "ORDER BY id DESC LIMIT %(limit)s", status=status, limit=limit)
    return [dict(r) for r in rows]


async def last_errors(connector, job_ids: list[int]) -> dict[int, str]:
    """Not stored by procrastinate beyond its events; the worker logs the traceback."""
    return {}


async def pending_count(connector) -> int:
    row = await connector.execute_query_one_async(
        "SELECT count(*) AS n FROM procrastinate_jobs WHERE status IN ('todo', 'doing')")
    return int(row["n"])

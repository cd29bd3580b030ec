"""The distributed job engine (procrastinate on PostgreSQL), used when
``Settings.jobs_url`` (WATTLINE_JOBS_URL) is set; unset, jobs run in-process as before.
The URL is never logged: it may carry a password."""

from __future__ import annotations

import procrastinate

from wattline.config import get_settings


def conninfo(url: str) -> str:
    """libpq conninfo from ``postgresql://`` or SQLAlchemy ``postgresql+psycopg://``."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.startswith("postgres"):
        raise ValueError("WATTLINE_JOBS_URL must be a postgresql:// URL")
    return "postgresql://" + rest


def build_app(url: str | None = None) -> procrastinate.App:
    url = url or get_settings().jobs_url
    if not url:
        raise RuntimeError("no job engine configured (WATTLINE_JOBS_URL is unset)")
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo(url)),
                            import_paths=["wattline.jobs.engine_tasks"])
    return app


async def apply_schema(app: procrastinate.App) -> None:
    """procrastinate's schema, once: applying it twice fails, so check first."""
    from wattline.store import engine_jobs_repo

    if not await engine_jobs_repo.schema_present(app.connector):
        await app.schema_manager.apply_schema_async()


async def defer(task_name: str, *, lock: str | None = None, queueing_lock: str | None = None, **kwargs) -> int:
    """Defer ``task_name`` (an engine_tasks task) and return its job id."""
    from wattline.jobs import engine_tasks

    app = engine_tasks.app
    async with app.open_async():
        await apply_schema(app)
        task = app.tasks[task_name]
        return await task.configure(lock=lock, queueing_lock=queueing_lock).defer_async(**kwargs)

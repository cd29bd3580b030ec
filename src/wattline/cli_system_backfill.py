"""``wattline systems backfill ID --since INSTANT``: a monitored system's vendor history
(mounted on the ``systems`` group by ``cli.py``)."""

from __future__ import annotations

import typer

from wattline.cli_systems import systems_app


@systems_app.command("backfill")
def systems_backfill(
    system_id: int = typer.Argument(..., help="the system's id"),
    since: str = typer.Option(..., help="where its history begins: ISO-8601 with offset (2026-11-01T00:00:00Z) or epoch s"),
) -> None:
    """Load a system's history from --since to now, through its vendor's API (resumes
    where a previous run stopped; a rerun stores nothing twice)."""
    import asyncio

    from wattline import logs
    from wattline.cli import _ctx, _fail, console
    from wattline.domain import timeutil
    from wattline.jobs.system_backfill import SystemNotBackfillable, backfill_system

    try:
        since_ts = timeutil.parse_instant(since)
    except ValueError as exc:
        _fail(f"--since: {exc}")
    logs.configure("WARNING")
    ctx = _ctx()
    try:
        result = asyncio.run(backfill_system(ctx, system_id, since_ts))
    except (SystemNotBackfillable, ValueError) as exc:
        _fail(str(exc))
    console.print_json(data=result.to_dict())
    if not result.success:
        raise typer.Exit(1)

"""``wattline points daily --catchup|--clear`` and ``wattline cleanup`` (mounted by ``cli.py``):
the daily aggregates of every point and raw-reading retention, each run recorded as a
job row (the same as ``POST /api/cron/daily`` and ``POST /api/cron/cleanup``)."""

from __future__ import annotations

import asyncio
import json

import typer

points_app = typer.Typer(help="Points: daily aggregates.", no_args_is_help=True)


def mount(app: typer.Typer) -> None:
    app.add_typer(points_app, name="points")
    app.command("cleanup")(cleanup)


def _show(job: dict) -> None:
    from wattline.cli import _fail, console

    if job["status"] != "succeeded":
        _fail(f"{job['kind']} job {job['id']} {job['status']}: {job.get('error')}", code=1)
    console.print(json.dumps(job.get("result"), indent=2, sort_keys=True))


@points_app.command("daily")
def points_daily(
    catchup: bool = typer.Option(False, "--catchup", help="derive the daily aggregates that are missing"),
    clear: bool = typer.Option(False, "--clear", help="re-derive every daily aggregate from the raw readings "
                                                      "still kept (older days stay as stored)"),
) -> None:
    """Fill or re-derive the points' daily aggregates."""
    from wattline.cli import _ctx, _fail
    from wattline.jobs.point_daily import run_daily_job
    from wattline.jobs.runner import JobAlreadyRunning

    if catchup == clear:
        _fail("give exactly one of --catchup or --clear")
    ctx = _ctx()
    try:
        job = asyncio.run(run_daily_job(ctx, "catchup" if catchup else "clear"))
    except JobAlreadyRunning:
        _fail("a daily aggregation runs already", code=1)
    _show(job)


def cleanup() -> None:
    """Delete raw readings older than each organization's raw retention (wattline orgs set
    --raw-retention-days); daily aggregates stay."""
    from wattline.cli import _ctx, _fail
    from wattline.jobs.cleanup import run_cleanup_job
    from wattline.jobs.runner import JobAlreadyRunning

    ctx = _ctx()
    try:
        job = asyncio.run(run_cleanup_job(ctx))
    except JobAlreadyRunning:
        _fail("a cleanup runs already", code=1)
    _show(job)

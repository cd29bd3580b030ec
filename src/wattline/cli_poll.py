"""``wattline poll``: minute polling of every active system (mounted by ``cli.py``)."""

from __future__ import annotations

import typer

from wattline import aio


def mount(app: typer.Typer) -> None:
    app.command("poll")(poll_cmd)


def poll_cmd(
    once: bool = typer.Option(False, "--once", help="one tick, then exit (else: every minute until Ctrl-C)"),
    force: bool = typer.Option(False, "--force", help="poll every active system now, due or not"),
    concurrency: int | None = typer.Option(None, min=1, help="systems polled at once (default: "
                                           "WATTLINE_POLL_CONCURRENCY, 1000)"),
) -> None:
    """Poll the latest values of every active system at its vendor's interval; one
    session row per poll."""
    import asyncio
    import json

    from wattline import logs
    from wattline.cli import _ctx, console
    from wattline.jobs.poll import Poller

    from wattline.jobs.dispatch import defer_now, engine_configured

    logs.configure("WARNING")
    if engine_configured():  # the workers poll every minute; --once defers one tick
        if not once:
            console.print("WATTLINE_JOBS_URL is set: the workers (wattline worker) poll every minute")
            return
        jid = defer_now("poll", lock="poll", queueing_lock="poll")
        console.print_json(json.dumps({"deferred": jid, "note": None if jid else "a poll is already queued"}))
        return
    ctx = _ctx()

    async def run() -> None:
        poller = Poller(ctx, concurrency=concurrency)
        try:
            if once:
                report = await poller.poll(cause="USER" if force else "CRON", force=force)
                console.print_json(json.dumps(report.to_dict()))
                return
            from apscheduler.schedulers.asyncio import AsyncIOScheduler

            from wattline.jobs.scheduler import add_poll_job

            scheduler = AsyncIOScheduler(timezone="UTC")
            add_poll_job(scheduler, poller)
            scheduler.start()
            console.print("polling every minute; Ctrl-C stops")
            await asyncio.Event().wait()
        finally:
            await poller.aclose()

    try:
        aio.run(run())
    except KeyboardInterrupt:
        pass
    finally:
        ctx.close()

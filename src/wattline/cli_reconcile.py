"""``wattline reconcile`` and ``wattline review …`` (mounted by ``cli.py``).

``reconcile`` checks each organization's local day (default: its yesterday, by
``wattline.clock``) as the nightly schedule does (``jobs.reconcile``) and prints a
summary; ``review list`` / ``review resolve`` show and close what it found.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from datetime import date
from typing import Optional

import typer
from rich.table import Table

review_app = typer.Typer(help="Review items: what reconciliation found and could not fix.", no_args_is_help=True)


def mount(app: typer.Typer) -> None:
    app.command("reconcile")(reconcile_command)
    app.add_typer(review_app, name="review")


def reconcile_command(
    day: Optional[str] = typer.Option(None, "--date", help="local date YYYY-MM-DD (default: yesterday in "
                                                           "each organization's zone)"),
    organization: Optional[str] = typer.Option(None, "--organization", help="only this organization (by name)"),
    fmt: str = typer.Option("text", "--format", help="text | json"),
) -> None:
    """Check a night: missing heartbeats, gaps > 10 min, out-of-order bursts, energy
    while switched off, aggregates that differ from the ledger. Fixes what is safe
    (rebuilds the day's buckets), opens review items for the rest; a second run over
    the same night opens nothing new."""
    from wattline import logs
    from wattline.cli import _ctx, _fail, console
    from wattline.domain.reconcile import KINDS
    from wattline.jobs.reconcile import run_reconcile_job

    if fmt not in ("text", "json"):
        _fail("--format must be text or json")
    try:
        d = None if day is None else date.fromisoformat(day)
    except ValueError:
        _fail(f"--date: not a date YYYY-MM-DD: {day!r}")
    logs.configure("WARNING")  # logs on stderr; the summary below is the output
    ctx = _ctx()
    try:
        job = asyncio.run(run_reconcile_job(ctx, day=d, organization=organization))
    except ValueError as exc:
        _fail(str(exc))
    if job["status"] != "succeeded":
        _fail(f"reconciliation job {job['id']} failed: {job['error']}", 1)
    summaries = job["result"]["organizations"]
    if fmt == "json":
        sys.stdout.write(json.dumps({"job": job["id"], "organizations": summaries}, indent=2) + "\n")
        return
    for s in summaries:
        found = ", ".join(f"{k} {s['findings'].get(k, 0)}" for k in KINDS)
        console.print(f"{s['organization']} {', '.join(s['days'])}: {s['devices_checked']} devices checked; "
                      f"findings: {found}; fixed {s['fixed']} ({s['buckets_rewritten']} buckets rewritten); "
                      f"{s['items_opened']} review items opened; {s['seconds']:.2f} s")
    console.print(f"(job {job['id']})")


@review_app.command("list")
def review_list(
    open_only: bool = typer.Option(False, "--open", help="only open items"),
    kind: Optional[str] = typer.Option(None, "--kind"),
    limit: int = typer.Option(200, "--limit", min=1, max=10_000),
    fmt: str = typer.Option("table", "--format", help="table | json"),
) -> None:
    """Review items, newest first."""
    from wattline.cli import _ctx, _fail, console
    from wattline.domain import timeutil
    from wattline.store import review_items_repo

    if fmt not in ("table", "json"):
        _fail("--format must be table or json")
    ctx = _ctx()
    with ctx.dbs.telemetry.connect() as conn:
        rows = review_items_repo.list_items(conn, status="open" if open_only else None, kind=kind, limit=limit)
    if fmt == "json":
        sys.stdout.write(json.dumps({"items": rows}, indent=2, default=str) + "\n")
        return
    t = Table("id", "kind", "status", "controller", "asset", "period (UTC)", "details", "resolved by")
    for r in rows:
        details = {k: v for k, v in (r["details"] or {}).items() if k != "listed"}
        t.add_row(str(r["id"]), r["kind"], r["status"], r["esp32_name"] or "", str(r["asset_id"] or ""),
                  f"{timeutil.iso(r['period_start'])} - {timeutil.iso(r['period_end'])}",
                  json.dumps(details, default=str)[:80], r["resolved_by"] or "")
    console.print(t)


@review_app.command("resolve")
def review_resolve(
    item_id: int = typer.Argument(..., min=1, max=2_147_483_647),
    note: str = typer.Option(..., "--note", help="why it is resolved"),
) -> None:
    """Resolve a review item with a note; resolving it again changes nothing."""
    from wattline import clock
    from wattline.cli import _ctx, _fail, console
    from wattline.store import review_items_repo

    if not note.strip():
        _fail("--note must not be empty")
    ctx = _ctx()
    with ctx.dbs.telemetry.begin() as conn:
        item, changed = review_items_repo.resolve(conn, item_id, by=f"cli:{getpass.getuser()}", note=note.strip(),
                                                  now=clock.now_s())
    if item is None:
        _fail(f"no review item {item_id}")
    if changed:
        console.print(f"review item {item_id} ({item['kind']}) resolved")
    else:
        console.print(f"review item {item_id} was resolved already by {item['resolved_by']}: nothing changed")

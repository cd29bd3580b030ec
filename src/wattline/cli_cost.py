"""``wattline cost-versions …``: rates per kWh with their effective instant and scope
(mounted by ``cli.py``).

Costs are priced on read from the ledger (``store/energy_costs.py``), so a version
added here re-prices every figure it covers at once. ``add`` then runs the
``recalculate`` job (``jobs.reprice``, recorded in the jobs table) over the range and
scope the version covers, printing its progress: entries covered, cost before/after.
"""

from __future__ import annotations

import getpass
import json
import sys
from typing import Optional

import typer
from rich.table import Table

from wattline.domain import timeutil

cost_versions_app = typer.Typer(help="Cost versions: a rate per kWh from an instant on, for everything, "
                                     "an organization, a group (classroom, work order) or one asset.",
                                no_args_is_help=True)


@cost_versions_app.command("add")
def add_command(
    rate: str = typer.Option(..., "--rate", help="currency units per kWh, e.g. 7.50 (up to 6 decimals)"),
    from_: str = typer.Option(..., "--from", help="effective from: ISO-8601 with offset, or epoch s"),
    currency: Optional[str] = typer.Option(
        None, "--currency", help="ISO 4217 code (default: the newest version's of the same organization, else INR)"),
    asset: Optional[str] = typer.Option(None, "--asset", help="only this asset (by name)"),
    group: Optional[str] = typer.Option(None, "--group", help="a group's assets: a classroom, a work order (by name)"),
    organization: Optional[str] = typer.Option(None, "--organization", help="an organization's assets (by name)"),
    notes: Optional[str] = typer.Option(None, "--notes"),
    recalculate: bool = typer.Option(True, "--recalculate/--no-recalculate",
                                     help="run the recalculation job over what the version covers"),
) -> None:
    """Add a cost version. The most specific scope in effect prices each instant
    (asset > group > organization > global); a ledger entry crossing a change of rate
    is split at it. Adding the same version again changes nothing."""
    from wattline.cli import _ctx, _fail, console
    from wattline.domain.cost import rate_micro_per_kwh
    from wattline.store import cost_versions_repo as repo

    try:
        micro = rate_micro_per_kwh(rate)
    except ValueError as exc:
        _fail(f"--rate: {exc}")
    try:
        effective = timeutil.parse_instant(from_)
    except ValueError as exc:
        _fail(f"--from: {exc}")
    ctx = _ctx()
    try:
        with ctx.dbs.main.begin() as conn:
            ref = repo.resolve_scope(conn, asset=asset, group=group, organization=organization)
            version, created = repo.add(conn, rate_micro_per_kwh=micro, effective_from=effective, ref=ref,
                                        currency=None if currency is None else currency.strip().upper(),
                                        notes=notes, created_by=f"cli:{getpass.getuser()}")
    except repo.CostVersionError as exc:
        _fail(str(exc))
    v = repo.public(version)
    where = v["scope"] if v["scope"] == "global" else f"{v['scope']} {v['scope_name']!r}"
    verb = "added" if created else "already present:"
    console.print(f"cost version {v['id']} {verb} {v['cost_per_kwh']} {v['currency']}/kWh "
                  f"from {v['effective_from']} for {where}")
    if recalculate:
        _run_recalculation(ctx, version)


def _run_recalculation(ctx, version: dict) -> None:
    """The recalculation job of a version, on this process's loop; progress printed."""
    import asyncio

    from wattline.cli import console
    from wattline.domain.cost import money_text
    from wattline.jobs.reprice import job_params, reprice_work
    from wattline.jobs.runner import JobRunner

    def show(p: dict) -> None:
        console.print(f"  {p['series_done']}/{p['series']} series: {p['entries_covered']} entries covered, "
                      f"cost {money_text(p['cost_before_micro'])} -> {money_text(p['cost_after_micro'])} "
                      f"{p['currency']}, {p['buckets_rewritten']} buckets rewritten")

    from wattline import logs

    logs.configure("WARNING")  # the job's log lines on stderr, not between the progress lines

    async def run() -> dict | None:
        runner = JobRunner(ctx)
        work = reprice_work(ctx, int(version["id"]))

        async def reporting(report):
            return await work(lambda p: (show(p), report(p)))

        job_id = await runner.start("recalculate", job_params(version), reporting)
        await runner.wait_all()
        return runner.get(job_id)

    job = asyncio.run(run())
    if job is None or job["status"] != "succeeded":
        console.print(f"recalculation job {None if job is None else job['id']} failed: "
                      f"{None if job is None else job['error']}")
        raise SystemExit(1)
    console.print(f"recalculation job {job['id']} succeeded")


@cost_versions_app.command("list")
def list_command(fmt: str = typer.Option("table", "--format", help="table | json")) -> None:
    """Every cost version, oldest effective instant first."""
    from wattline.cli import _ctx, _fail, console
    from wattline.store import cost_versions_repo as repo

    if fmt not in ("table", "json"):
        _fail("--format must be table or json")
    ctx = _ctx()
    with ctx.dbs.main.connect() as conn:
        versions = [repo.public(v) for v in repo.list_versions(conn)]
    if fmt == "json":
        sys.stdout.write(json.dumps({"versions": versions}, indent=2) + "\n")
        return
    t = Table("id", "rate / kWh", "currency", "effective from (UTC)", "scope", "notes", "created by")
    for v in versions:
        scope = v["scope"] if v["scope"] == "global" else f"{v['scope']} {v['scope_name'] or v['scope_id']}"
        t.add_row(str(v["id"]), v["cost_per_kwh"], v["currency"], v["effective_from"], scope, v["notes"] or "",
                  v["created_by"] or "")
    console.print(t)

"""``wattline cost from-amber``: an Amber account's general prices as cost versions
(mounted by ``cli.py``; the work is :func:`wattline.jobs.amber_cost.cost_from_amber`)."""

from __future__ import annotations

import asyncio
from typing import Optional

import typer

from wattline.domain import timeutil

cost_app = typer.Typer(help="Cost from a vendor's dynamic tariff.", no_args_is_help=True)


@cost_app.command("from-amber")
def from_amber(
    account: int = typer.Option(..., "--account", help="the Amber vendor account's id"),
    site: Optional[str] = typer.Option(None, "--site", help="Amber site id (default: the account's only site)"),
    days: int = typer.Option(1, "--days", min=1, max=90, help="the last N days of prices, up to now"),
    asset: Optional[str] = typer.Option(None, "--asset", help="price only this asset (by name)"),
    organization: Optional[str] = typer.Option(None, "--organization",
                                               help="an organization (by name; default: the account's)"),
    include_estimates: bool = typer.Option(False, help="also store forecasts and the current estimate"),
) -> None:
    """One cost version per 30-minute Amber price interval (AUD/kWh, from c/kWh incl. GST).
    Running it again changes nothing; negative prices are stored as 0 and listed."""
    from wattline import clock
    from wattline.cli import _ctx, _fail, console
    from wattline.jobs.amber_cost import AmberCostError, cost_from_amber
    from wattline.sources.vendors.errors import VendorError
    from wattline.store.cost_versions_repo import CostVersionError

    if asset is not None and organization is not None:
        _fail("give --asset or --organization, not both")
    end = clock.now_s()
    ctx = _ctx()
    try:
        r = asyncio.run(cost_from_amber(ctx, account, site, end - days * 86400, end, asset=asset,
                                        organization=organization, include_estimates=include_estimates))
    except (AmberCostError, CostVersionError, VendorError) as exc:
        _fail(str(exc))
    console.print(f"{r.created} cost versions added, {r.existing} already present, "
                  f"{r.skipped_estimates} estimates skipped, {len(r.rejected)} records rejected "
                  f"({len(r.calls)} Amber calls)")
    for ts, c in r.clamped:
        console.print(f"  {timeutil.iso(ts)}: price {c:g} c/kWh is negative, stored as 0")
    for rej in r.rejected:
        console.print(f"  rejected: {rej.reason}")

"""``wattline orgs …``: organization settings (mounted by ``cli.py``)."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

orgs_app = typer.Typer(help="Organizations and their settings.", no_args_is_help=True)


def mount(app: typer.Typer) -> None:
    app.add_typer(orgs_app, name="orgs")


def _on_off(value: str) -> bool:
    v = value.strip().lower()
    if v not in ("on", "off"):
        raise typer.BadParameter("on or off")
    return v == "on"


@orgs_app.command("set")
def orgs_set(
    auto_register_devices: Optional[str] = typer.Option(
        None, "--auto-register-devices", metavar="on|off",
        help="on: a message from an unknown device registers it in the classroom its payload names; "
             "off: it is kept until 'wattline devices add' replays it"),
    raw_retention_days: Optional[str] = typer.Option(
        None, "--raw-retention-days", metavar="N|keep",
        help="the weekly cleanup deletes raw point readings older than N days (whole local days; daily "
             "aggregates stay); keep: never delete"),
    organization: Optional[str] = typer.Option(None, help="organization name (default: the default organization)"),
) -> None:
    """Change an organization's settings."""
    from wattline import provisioning
    from wattline.cli import _ctx, _fail, console
    from wattline.jobs.cleanup import MIN_RETENTION_DAYS
    from wattline.store import org_settings_repo

    if auto_register_devices is None and raw_retention_days is None:
        _fail("nothing to set: pass --auto-register-devices on|off or --raw-retention-days N|keep")
    on = days = None
    if auto_register_devices is not None:
        try:
            on = _on_off(auto_register_devices)
        except typer.BadParameter:
            _fail(f"--auto-register-devices must be on or off, not {auto_register_devices!r}")
    if raw_retention_days is not None:
        text = raw_retention_days.strip().lower()
        if text != "keep":
            if not text.isdigit() or not MIN_RETENTION_DAYS <= int(text) <= 36600:
                _fail(f"--raw-retention-days must be keep or a number of days from {MIN_RETENTION_DAYS} "
                      f"to 36600, not {raw_retention_days!r}")
            days = int(text)
    ctx = _ctx()
    try:
        with ctx.dbs.main.begin() as conn:
            org = provisioning.organization_named(conn, organization)
            if on is not None:
                org_settings_repo.set_auto_register_devices(conn, org, on)
            if raw_retention_days is not None:
                org_settings_repo.set_raw_retention_days(conn, org, days)
    except provisioning.RegistryError as exc:
        _fail(str(exc))
    name = f"organization {organization or 'default'} (id {org})"
    if on is not None:
        console.print(f"auto-registration of devices {'on' if on else 'off'} for {name}")
    if raw_retention_days is not None:
        console.print(f"raw readings of {name}: " + ("kept" if days is None else f"kept {days} days"))


@orgs_app.command("list")
def orgs_list() -> None:
    """List the organizations with their timezone and settings."""
    from wattline.cli import _ctx, console
    from wattline.store import org_settings_repo

    ctx = _ctx()
    with ctx.dbs.main_reader.connect() as conn:
        rows = org_settings_repo.organizations_list(conn)
    table = Table("id", "name", "timezone", "auto sync", "auto-register devices", "raw retention")
    for r in rows:
        table.add_row(str(r["id"]), r["name"], r["timezone"], "on" if r["auto_sync_enabled"] else "off",
                      "on" if r["auto_register_devices"] else "off",
                      "keep" if r["raw_retention_days"] is None else f"{r['raw_retention_days']} days")
    console.print(table)

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
    organization: Optional[str] = typer.Option(None, help="organization name (default: the default organization)"),
) -> None:
    """Change an organization's settings."""
    from wattline import provisioning
    from wattline.cli import _ctx, _fail, console
    from wattline.store import org_settings_repo

    if auto_register_devices is None:
        _fail("nothing to set: pass --auto-register-devices on|off")
    try:
        on = _on_off(auto_register_devices)
    except typer.BadParameter:
        _fail(f"--auto-register-devices must be on or off, not {auto_register_devices!r}")
    ctx = _ctx()
    try:
        with ctx.dbs.main.begin() as conn:
            org = provisioning.organization_named(conn, organization)
            org_settings_repo.set_auto_register_devices(conn, org, on)
    except provisioning.RegistryError as exc:
        _fail(str(exc))
    console.print(f"auto-registration of devices {'on' if on else 'off'} for organization {organization or 'default'} (id {org})")


@orgs_app.command("list")
def orgs_list() -> None:
    """List the organizations with their timezone and settings."""
    from wattline.cli import _ctx, console
    from wattline.store import org_settings_repo

    ctx = _ctx()
    with ctx.dbs.main_reader.connect() as conn:
        rows = org_settings_repo.organizations_list(conn)
    table = Table("id", "name", "timezone", "auto sync", "auto-register devices")
    for r in rows:
        table.add_row(str(r["id"]), r["name"], r["timezone"], "on" if r["auto_sync_enabled"] else "off",
                      "on" if r["auto_register_devices"] else "off")
    console.print(table)

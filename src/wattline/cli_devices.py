"""``wattline classrooms …`` and ``wattline devices …``: the campus registry (mounted by ``cli.py``).

Registering a device replays the messages kept while it was unknown, so nothing a
device sent before it was registered is lost.
"""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

classrooms_app = typer.Typer(help="Classrooms: groups of metered devices with a timezone.", no_args_is_help=True)
devices_app = typer.Typer(help="Metered devices (ESP32 controller + device id) in classrooms.", no_args_is_help=True)

ORG_HELP = "organization name (default: the default organization)"


def mount(app: typer.Typer) -> None:
    app.add_typer(classrooms_app, name="classrooms")
    app.add_typer(devices_app, name="devices")


@classrooms_app.command("add")
def classrooms_add(
    name: str = typer.Argument(..., help="e.g. CR-101"),
    timezone: Optional[str] = typer.Option(None, help="IANA zone, e.g. Asia/Kolkata (default: its organization's)"),
    organization: Optional[str] = typer.Option(None, help=ORG_HELP),
) -> None:
    """Add a classroom; its days, months and years are those of its timezone."""
    from wattline import provisioning
    from wattline.cli import _ctx, _fail, console

    ctx = _ctx()
    try:
        with ctx.dbs.main.begin() as conn:
            org = provisioning.organization_named(conn, organization)
            cid = provisioning.add_classroom(conn, name, timezone, organization_id=org)
    except provisioning.RegistryError as exc:
        _fail(str(exc))
    console.print(f"classroom {name!r} added with id {cid}" + (f" ({timezone})" if timezone else ""))


@classrooms_app.command("list")
def classrooms_list(organization: Optional[str] = typer.Option(None, help=ORG_HELP)) -> None:
    """List the classrooms with their timezone and number of devices."""
    from wattline import provisioning
    from wattline.cli import _ctx, _fail, console

    ctx = _ctx()
    try:
        with ctx.dbs.main.begin() as conn:
            rows = provisioning.classrooms(conn, provisioning.organization_named(conn, organization))
    except provisioning.RegistryError as exc:
        _fail(str(exc))
    table = Table("id", "name", "timezone", "devices")
    for r in rows:
        tz = r["timezone"] or f"{r['effective_timezone']} (organization's)"
        table.add_row(str(r["id"]), r["name"], tz, str(r["devices"]))
    console.print(table)


@devices_app.command("add")
def devices_add(
    esp32_name: str = typer.Argument(..., help="the controller, e.g. ESP01"),
    device_id: str = typer.Argument(..., help="the device on it, e.g. light_1"),
    classroom: str = typer.Option(..., help="its classroom, e.g. CR-101"),
    switch: Optional[str] = typer.Option(None, help="the controller's switch feeding it, e.g. sw1"),
    method: str = typer.Option("counter", help="counter (payloads carry energy_wh_total) | power (power_w only)"),
    organization: Optional[str] = typer.Option(None, help=ORG_HELP),
) -> None:
    """Register a device, then replay into the ledger what it sent while unknown."""
    from wattline import provisioning
    from wattline.cli import _ctx, _fail, console
    from wattline.jobs.device_telemetry import replay_device

    ctx = _ctx()
    try:
        with ctx.dbs.main.begin() as conn:
            org = provisioning.organization_named(conn, organization)
            aid = provisioning.add_device(conn, esp32_name, device_id, classroom, switch=switch, method=method,
                                          organization_id=org)
    except provisioning.RegistryError as exc:
        _fail(str(exc))
    console.print(f"device {esp32_name}/{device_id} added with id {aid} in {classroom} ({method})")
    replay = replay_device(ctx.pipeline, ctx.dbs.main_reader, org, esp32_name, device_id)
    if replay.pending:
        console.print(f"replayed {replay.replayed} of {replay.pending} kept messages into the ledger")


@devices_app.command("list")
def devices_list(
    classroom: Optional[str] = typer.Option(None, help="only this classroom's"),
    organization: Optional[str] = typer.Option(None, help=ORG_HELP),
) -> None:
    """List the devices: controller, id, classroom, switch, energy method, asset id."""
    from wattline import provisioning
    from wattline.cli import _ctx, _fail, console

    ctx = _ctx()
    try:
        with ctx.dbs.main.begin() as conn:
            rows = provisioning.devices(conn, provisioning.organization_named(conn, organization), classroom)
    except provisioning.RegistryError as exc:
        _fail(str(exc))
    table = Table("asset id", "esp32", "device", "classroom", "switch", "method", "timezone")
    for r in rows:
        table.add_row(str(r["asset_id"]), r["esp32_name"], r["device_id"], r["classroom"], r["switch_id"] or "",
                      r["energy_method"], r["timezone"])
    console.print(table)

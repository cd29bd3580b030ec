"""``wattline systems …`` and ``wattline composites …``: monitored systems (seed 003)
with their owners, shares and points; composites of systems (mounted by ``cli.py``)."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from wattline.domain import timeutil

systems_app = typer.Typer(help="Monitored systems (seed 003): owner, vendor, site, points, shares.",
                          no_args_is_help=True)
composites_app = typer.Typer(help="Composites: several systems seen as one.", no_args_is_help=True)


def mount(app: typer.Typer) -> None:
    app.add_typer(systems_app, name="systems")
    app.add_typer(composites_app, name="composites")


def parse_credentials(items: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` options as a mapping (a value is never echoed in an error)."""
    from wattline.cli import _fail

    creds: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            _fail(f"--credential must be KEY=VALUE, got a value without '=' for {key or '?'!r}")
        if key in creds:
            _fail(f"--credential {key} is given twice")
        creds[key] = value
    return creds


@systems_app.command("add")
def systems_add(
    name: str = typer.Argument(..., help="display name"),
    vendor: str = typer.Option(..., help="vendor type, e.g. solarman, sungrow"),
    site_id: str = typer.Option(..., "--site-id", help="the vendor's id of the site / plant"),
    owner: str = typer.Option(..., help="username of the owner (role user or above)"),
    timezone: str = typer.Option("UTC", help="IANA display timezone, e.g. Australia/Sydney"),
    credential: list[str] = typer.Option([], help="KEY=VALUE, repeatable: the vendor account's credentials"),
    account: Optional[int] = typer.Option(None, help="use this existing vendor account instead of credentials"),
    alias: Optional[str] = typer.Option(None, help="URL name, unique per owner (default: from the name)"),
    base_url: Optional[str] = typer.Option(None, help="vendor API base URL (default: the vendor's cloud)"),
    default: bool = typer.Option(False, "--default", help="make it the owner's default system"),
    unlimited: bool = typer.Option(False, help="no rate limit on its new account (an emulated cloud)"),
) -> None:
    """Add a system with its vendor's default points. Credentials are checked against
    the vendor's model and stored encrypted; a refused input writes nothing."""
    from wattline import provisioning, system_admin
    from wattline.cli import _ctx, _fail, console
    from wattline.sources.vendors.errors import InvalidCredentials, UnknownVendorError

    creds = parse_credentials(credential) if credential else None
    try:  # before opening the databases: refused credentials touch nothing
        if creds is not None:
            provisioning.validate_vendor_credentials(vendor, creds)
        elif account is None:
            _fail(f"give the {vendor} credentials with --credential KEY=VALUE (or --account ID)")
    except (InvalidCredentials, UnknownVendorError) as exc:
        _fail(str(exc))
    ctx = _ctx()
    try:
        with ctx.dbs.main.begin() as conn:
            sid = system_admin.add_system(
                conn, ctx.settings, name, vendor, site_id, owner, timezone=timezone, credentials=creds,
                account_id=account, base_url=base_url, alias=alias, make_default=default,
                rate_limits=dict(provisioning.UNLIMITED) if unlimited else None)
            points = len(system_admin.systems_repo.system_points(conn, sid))
    except (system_admin.RegistryError, InvalidCredentials, UnknownVendorError) as exc:
        _fail(str(exc))
    finally:
        ctx.close()
    console.print(f"system {name!r} added with id {sid} ({vendor} site {site_id}, {points} points)")


@systems_app.command("list")
def systems_list(
    output: str = typer.Option("table", "--format", help="table | json"),
) -> None:
    """Every system with its owner, vendor, status and shares."""
    import json

    from wattline import system_admin
    from wattline.cli import _ctx, _fail, console

    if output not in ("table", "json"):
        _fail("--format must be table or json")

    ctx = _ctx()
    try:
        with ctx.dbs.main.connect() as conn:
            rows = system_admin.systems_with_status(conn, ctx.dbs.telemetry)
    finally:
        ctx.close()
    if output == "json":
        keys = ("id", "display_name", "alias", "owner", "vendor_type", "vendor_site_id", "timezone", "status",
                "is_default", "consecutive_failures")
        print(json.dumps([{**{k: r[k] for k in keys}, "shared_with": sorted(r["shared_with"])} for r in rows]))
        return
    t = Table("id", "name", "alias", "owner", "vendor", "site id", "timezone", "status", "default", "shared with")
    for r in rows:
        t.add_row(str(r["id"]), r["display_name"], r["alias"], r["owner"], r["vendor_type"], r["vendor_site_id"],
                  r["timezone"], r["status"], "yes" if r["is_default"] else "", ", ".join(sorted(r["shared_with"])))
    console.print(t)


@systems_app.command("share")
def systems_share(
    system_id: int = typer.Argument(..., help="the system's id"),
    with_user: str = typer.Option(..., "--with", help="username to share with (read access)"),
    revoke: bool = typer.Option(False, "--revoke", help="take the share back"),
) -> None:
    """Share a system with a user (read access), or revoke the share."""
    from wattline import system_admin
    from wattline.cli import _ctx, _fail, console

    ctx = _ctx()
    try:
        with ctx.dbs.main.begin() as conn:
            changed = system_admin.share_system(conn, system_id, with_user, "cli", revoke=revoke)
    except system_admin.RegistryError as exc:
        _fail(str(exc))
    finally:
        ctx.close()
    if revoke:
        console.print(f"system {system_id}: share with {with_user!r} " + ("revoked" if changed else "did not exist"))
    else:
        console.print(f"system {system_id} " + ("shared with" if changed else "was already shared with")
                      + f" {with_user!r}")


@composites_app.command("add")
def composites_add(
    slug: str = typer.Argument(..., help="URL name"),
    name: str = typer.Option(..., help="display name"),
    members: str = typer.Option(..., help="system ids, comma-separated, in display order"),
    description: Optional[str] = typer.Option(None, help="free text"),
    owner: Optional[str] = typer.Option(None, help="username of its owner (must be able to read every member)"),
    favourite: bool = typer.Option(False, "--favourite", help="pin it (shown first)"),
) -> None:
    """A composite of systems (a group of kind ``composite``), members in the given order."""
    from wattline import system_admin
    from wattline.cli import _ctx, _fail, console

    try:
        ids = [int(m) for m in members.split(",") if m.strip()]
    except ValueError:
        _fail(f"--members must be system ids separated by commas, got {members!r}")
    ctx = _ctx()
    try:
        with ctx.dbs.main.begin() as conn:
            gid = system_admin.add_composite(conn, slug, name, ids, owner=owner, description=description,
                                             favourite=favourite)
        refresh = getattr(ctx.latest_values, "refresh_subscriptions", None)
        if refresh is not None:  # Redis: the composites each system feeds
            refresh(ids)
    except system_admin.RegistryError as exc:
        _fail(str(exc))
    finally:
        ctx.close()
    console.print(f"composite {slug!r} added with id {gid} ({len(set(ids))} systems)")


@composites_app.command("list")
def composites_list(
    output: str = typer.Option("table", "--format", help="table | json"),
) -> None:
    """Every composite with its owner and members (in display order)."""
    import json

    from wattline.cli import _ctx, _fail, console
    from wattline.store import composites_repo

    if output not in ("table", "json"):
        _fail("--format must be table or json")
    ctx = _ctx()
    try:
        with ctx.dbs.main.connect() as conn:
            rows = composites_repo.list_composites(conn)
    finally:
        ctx.close()
    if output == "json":
        print(json.dumps([{"id": r["id"], "slug": r["slug"], "name": r["name"], "description": r["description"],
                           "favourite": r["favourite"], "owner": r["owner"], "memberIds": r["member_ids"]}
                          for r in rows]))
        return
    t = Table("id", "slug", "name", "owner", "favourite", "members", "description")
    for r in rows:
        t.add_row(str(r["id"]), r["slug"] or "", r["name"], r["owner"] or "", "yes" if r["favourite"] else "",
                  ",".join(map(str, r["member_ids"])), r["description"] or "")
    console.print(t)


@systems_app.command("points")
def systems_points(system_id: int = typer.Argument(..., help="the system's id")) -> None:
    """The system's points by display order, with their transform versions."""
    from wattline.cli import _ctx, _fail, console
    from wattline.store import systems_repo

    ctx = _ctx()
    try:
        with ctx.dbs.main.connect() as conn:
            if systems_repo.system(conn, system_id) is None:
                _fail(f"no system with id {system_id}")
            pts = systems_repo.system_points(conn, system_id)
            versions = systems_repo.transform_versions(conn, [p["id"] for p in pts])
    finally:
        ctx.close()
    t = Table("series", "key", "label", "metric", "unit", "subsystem", "type", "order", "visible", "active",
              "transforms (from epoch s)")
    for p in pts:
        t.add_row(str(p["id"]), p["key"], p["label"] or "", p["metric_type"], p["unit"], p["subsystem"] or "",
                  p["point_type"] or "", str(p["display_order"]), "yes" if p["visible"] else "no",
                  "yes" if p["active"] else "no", "; ".join(f"{eff}: {tr}" for eff, tr in versions.get(p["id"], [])))
    console.print(t)


@systems_app.command("edit-point")
def systems_edit_point(
    system_id: int = typer.Argument(..., help="the system's id"),
    key: str = typer.Argument(..., help="the point's key, e.g. power"),
    label: Optional[str] = typer.Option(None, help="display label"),
    order: Optional[int] = typer.Option(None, "--order", help="display order (lower first)"),
    visible: Optional[bool] = typer.Option(None, "--visible/--hidden", help="show it on the system's page"),
    active: Optional[bool] = typer.Option(None, "--active/--inactive", help="collect it when polling"),
    scale: Optional[float] = typer.Option(None, help="transform: value x scale"),
    offset: Optional[float] = typer.Option(None, help="transform: + offset (after scale)"),
    flip_sign: bool = typer.Option(False, "--flip-sign", help="transform: negate the result"),
    effective_from: Optional[str] = typer.Option(
        None, help="when a transform change applies (ISO-8601 or epoch s); stored readings stay as they arrived"),
) -> None:
    """Change a point's label, order, visibility or activity (its history stays), or add
    a transform version that applies from its effective time on."""
    from wattline import system_admin
    from wattline.cli import _ctx, _fail, console

    fields = {k: v for k, v in (("label", label), ("display_order", order), ("visible", visible),
                                ("active", active)) if v is not None}
    transform = None
    if scale is not None or offset is not None or flip_sign:
        transform = {k: v for k, v in (("scale", scale), ("offset", offset)) if v is not None}
        if flip_sign:
            transform["sign"] = -1
    eff = None
    if effective_from is not None:
        try:
            eff = timeutil.parse_instant(effective_from)
        except ValueError as exc:
            _fail(f"--effective-from: {exc}")
    if not fields and transform is None:
        _fail("nothing to change: give --label, --order, --visible/--hidden, --active/--inactive or a transform")
    ctx = _ctx()
    try:
        with ctx.dbs.main.begin() as conn:
            system_admin.edit_point(conn, system_id, key, by="cli", transform=transform, effective_from=eff, **fields)
    except system_admin.RegistryError as exc:
        _fail(str(exc))
    finally:
        ctx.close()
    console.print(f"system {system_id} point {key!r} updated")


@systems_app.command("set-status")
def systems_set_status(
    system_id: int = typer.Argument(..., help="the system's id"),
    status: str = typer.Argument(..., help="active (polled) or paused (not polled)"),
) -> None:
    """Pause or resume a system's polling."""
    from wattline import system_admin
    from wattline.cli import _ctx, _fail, console

    ctx = _ctx()
    try:
        with ctx.dbs.main.begin() as conn:
            system_admin.set_status(conn, system_id, status)
    except system_admin.RegistryError as exc:
        _fail(str(exc))
    finally:
        ctx.close()
    console.print(f"system {system_id} is {status}")

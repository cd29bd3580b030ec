"""Registry SQL on the main database: organizations, vendor accounts, assets, points, groups.

Writes here are administration; callers go through :mod:`wattline.provisioning`
(CLI, demo set-up, simulator sites, CSV points), which adds the rules that span the
registry and the vendors. The pipeline and jobs only read the registry.
"""

from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import Connection, insert, select

from wattline.domain import timeutil
from wattline.domain.metrics import CANONICAL_UNIT
from wattline.domain.sources import PointDefinition
from wattline.store.tables import assets, group_members, groups, organizations, points, vendor_accounts

ASSET_KINDS = ("plant", "system", "site", "device", "meter")
GROUP_KINDS = ("work_order", "composite", "classroom")
DEFAULT_ORG = "default"


class RegistryError(ValueError):
    """Bad registry input: the message says what and why."""


# the connection type callers pass through (a transaction on the main database)
Conn = Connection


def _after_explicit_id(conn: Connection, table: str) -> None:
    """PostgreSQL: move the id sequence past an explicitly chosen id, so later rows
    without one do not collide with it."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")


def ensure_organization(conn: Connection, name: str = DEFAULT_ORG, timezone: str = "UTC", **kw) -> int:
    timeutil.zone(timezone)
    row = conn.execute(select(organizations.c.id).where(organizations.c.name == name)).first()
    if row:
        return row[0]
    return conn.execute(insert(organizations).values(name=name, timezone=timezone, **kw)).inserted_primary_key[0]


def add_asset(
    conn: Connection, name: str, kind: str, timezone: str, *, organization_id: int | None = None,
    asset_id: int | None = None, vendor_type: str | None = None, vendor_plant_id: str | None = None,
    vendor_account_id: int | None = None, start_operating_time: int | None = None,
    capacity_kw: float | None = None, latitude: float | None = None, longitude: float | None = None,
) -> int:
    if kind not in ASSET_KINDS:
        raise RegistryError(f"asset kind must be one of {', '.join(ASSET_KINDS)}, not {kind!r}")
    try:
        timeutil.zone(timezone)
    except timeutil.TimezoneError as exc:
        raise RegistryError(str(exc)) from exc
    if not name.strip():
        raise RegistryError("asset name must not be empty")
    if conn.execute(select(assets.c.id).where(assets.c.name == name)).first():
        raise RegistryError(f"an asset named {name!r} already exists")
    if asset_id is not None and conn.execute(select(assets.c.id).where(assets.c.id == asset_id)).first():
        raise RegistryError(f"asset id {asset_id} is taken")
    org = organization_id if organization_id is not None else ensure_organization(conn)
    values = dict(
        organization_id=org, name=name, kind=kind, timezone=timezone, vendor_type=vendor_type,
        vendor_plant_id=vendor_plant_id, vendor_account_id=vendor_account_id,
        start_operating_time=start_operating_time, capacity_kw=capacity_kw,
        latitude=latitude, longitude=longitude,
    )
    if asset_id is not None:
        values["id"] = asset_id
    new_id = conn.execute(insert(assets).values(**values)).inserted_primary_key[0]
    if asset_id is not None:
        _after_explicit_id(conn, "assets")
    return new_id


def ensure_points(conn: Connection, asset_id: int, specs: Iterable[PointDefinition]) -> dict[str, int]:
    """Create missing points of an asset; return key -> series id for all given."""
    out = {}
    for spec in specs:
        row = conn.execute(select(points.c.id, points.c.metric_type).where(
            points.c.asset_id == asset_id, points.c.key == spec.key)).first()
        if row:
            if row[1] != spec.metric_type.value:
                raise RegistryError(
                    f"point {spec.key!r} is a {row[1]} series, not {spec.metric_type.value}")
            out[spec.key] = row[0]
            continue
        out[spec.key] = conn.execute(insert(points).values(
            asset_id=asset_id, key=spec.key, metric_type=spec.metric_type.value,
            unit=CANONICAL_UNIT[spec.metric_type], vendor_field=spec.vendor_field,
            reset_ratio=spec.reset_ratio, wrap_kwh=spec.wrap_kwh,
            expected_interval_s=spec.expected_interval_s, plausible_min=spec.plausible_min,
            plausible_max=spec.plausible_max,
        )).inserted_primary_key[0]
    return out


def add_group(conn: Connection, name: str, kind: str, member_ids: Iterable[int], *,
              group_id: int | None = None, organization_id: int | None = None) -> int:
    if kind not in GROUP_KINDS:
        raise RegistryError(f"group kind must be one of {', '.join(GROUP_KINDS)}, not {kind!r}")
    org = organization_id if organization_id is not None else ensure_organization(conn)
    values = dict(organization_id=org, kind=kind, name=name)
    if group_id is not None:
        values["id"] = group_id
    gid = conn.execute(insert(groups).values(**values)).inserted_primary_key[0]
    if group_id is not None:
        _after_explicit_id(conn, "groups")
    for m in member_ids:
        conn.execute(insert(group_members).values(group_id=gid, asset_id=m))
    return gid


def list_assets(conn: Connection):
    """Every asset, by id (rows as mappings)."""
    return conn.execute(select(assets).order_by(assets.c.id)).mappings().all()


def asset_by_name(conn: Connection, name: str):
    return conn.execute(select(assets).where(assets.c.name == name)).mappings().first()


def asset_by_id(conn: Connection, asset_id: int):
    return conn.execute(select(assets).where(assets.c.id == asset_id)).mappings().first()


def point(conn: Connection, asset_id: int, key: str):
    return conn.execute(select(points).where(points.c.asset_id == asset_id, points.c.key == key)).mappings().first()


def update_asset(conn: Connection, asset_id: int, **values: Any) -> None:
    """Change columns of an asset (e.g. a simulated site's location and capacity)."""
    if values:
        conn.execute(assets.update().where(assets.c.id == asset_id).values(**values))


# -- vendor accounts ----------------------------------------------------------------


def vendor_account_exists(conn: Connection, organization_id: int, name: str) -> bool:
    return conn.execute(select(vendor_accounts.c.id).where(
        vendor_accounts.c.organization_id == organization_id, vendor_accounts.c.name == name)).first() is not None


def insert_vendor_account(conn: Connection, organization_id: int, vendor_type: str, name: str,
                          credentials_encrypted: bytes, *, base_url: str | None = None,
                          rate_limits: dict | None = None) -> int:
    return conn.execute(insert(vendor_accounts).values(
        organization_id=organization_id, vendor_type=vendor_type, name=name, base_url=base_url,
        credentials_encrypted=credentials_encrypted, rate_limits=rate_limits,
    )).inserted_primary_key[0]


def vendor_account_ids(conn: Connection, vendor_type: str, organization_id: int) -> list[int]:
    """Ids of the organization's accounts of one vendor type."""
    return [r[0] for r in conn.execute(select(vendor_accounts.c.id).where(
        vendor_accounts.c.vendor_type == vendor_type, vendor_accounts.c.organization_id == organization_id))]

"""Main-database SQL of organization settings: ``auto_register_devices`` (a telemetry
message from an unknown device registers it), ``raw_retention_days`` (the weekly
cleanup deletes older raw point readings; NULL: kept)."""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from wattline.store.tables import organizations


def auto_register_devices(conn: Connection, organization_id: int) -> bool:
    """Whether the organization registers unknown devices on their first message (False if unknown)."""
    return bool(conn.execute(select(organizations.c.auto_register_devices)
                             .where(organizations.c.id == organization_id)).scalar())


def set_auto_register_devices(conn: Connection, organization_id: int, on: bool) -> None:
    conn.execute(update(organizations).where(organizations.c.id == organization_id)
                 .values(auto_register_devices=bool(on)))


def organizations_list(conn: Connection) -> list[dict]:
    """Every organization: id, name, timezone, auto_sync_enabled, auto_register_devices,
    raw_retention_days, by name."""
    o = organizations
    return [dict(r) for r in conn.execute(
        select(o.c.id, o.c.name, o.c.timezone, o.c.auto_sync_enabled, o.c.auto_register_devices,
               o.c.raw_retention_days)
        .order_by(o.c.name)).mappings()]


def set_raw_retention_days(conn: Connection, organization_id: int, days: int | None) -> None:
    """Raw point readings older than ``days`` are deleted by the weekly cleanup; None: kept."""
    conn.execute(update(organizations).where(organizations.c.id == organization_id)
                 .values(raw_retention_days=None if days is None else int(days)))


def raw_retention_days(conn: Connection, organization_id: int) -> int | None:
    return conn.execute(select(organizations.c.raw_retention_days)
                        .where(organizations.c.id == organization_id)).scalar()

"""The organizations the scheduled sync serves (registry, read-only)."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import Engine, select

from wattline.store.tables import organizations


class AutoSyncOrganization(NamedTuple):
    id: int
    name: str
    timezone: str
    sync_interval_minutes: int | None


def auto_sync_organizations(main_reader: Engine) -> list[AutoSyncOrganization]:
    """Organizations with ``auto_sync_enabled``, by id."""
    o = organizations.c
    with main_reader.connect() as conn:
        rows = conn.execute(select(o.id, o.name, o.timezone, o.sync_interval_minutes)
                            .where(o.auto_sync_enabled.is_(True)).order_by(o.id)).all()
    return [AutoSyncOrganization(*r) for r in rows]

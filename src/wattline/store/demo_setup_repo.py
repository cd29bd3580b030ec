"""Registry writes of ``wattline demo``'s set-up that the registry module has no
general form for: the demo organization's sync settings and its emulated accounts;
and where the demo campus's feed resumes."""

from __future__ import annotations

from sqlalchemy import Connection, func, select, update

from wattline.store.tables import groups, organizations, readings, vendor_accounts


def set_auto_sync(conn: Connection, organization_id: int, interval_minutes: int) -> None:
    conn.execute(update(organizations).where(organizations.c.id == organization_id)
                 .values(auto_sync_enabled=True, sync_interval_minutes=interval_minutes))


def vendor_account_id(conn: Connection, organization_id: int, name: str) -> int | None:
    """The id of the organization's vendor account called ``name``, or None."""
    row = conn.execute(select(vendor_accounts.c.id).where(vendor_accounts.c.organization_id == organization_id,
                                                          vendor_accounts.c.name == name)).first()
    return None if row is None else row[0]


def group_exists(conn: Connection, group_id: int) -> bool:
    return conn.execute(select(groups.c.id).where(groups.c.id == group_id)).first() is not None


def set_base_url(conn: Connection, account_id: int, base_url: str) -> None:
    conn.execute(update(vendor_accounts).where(vendor_accounts.c.id == account_id).values(base_url=base_url))


def newest_reading_ts(telemetry: Connection, series_ids: list[int]) -> int | None:
    """The newest reading instant (UTC epoch s) of any of the series (telemetry database),
    or None: where the demo campus's feed resumes."""
    if not series_ids:
        return None
    return telemetry.execute(select(func.max(readings.c.ts)).where(
        readings.c.series_id.in_([int(s) for s in series_ids]))).scalar()

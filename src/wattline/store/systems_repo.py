"""Systems (seed 003) on the main database: the system row of an asset of kind
``system``, its shares, its points' display fields and transform versions, and what
polling reads (read-only, through ``main_reader``).

Writes take the caller's transaction (``with dbs.main.begin() as conn``); the rules
(aliases, default system, who may own) live in :mod:`wattline.system_admin`.
"""

from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from wattline.domain.sources import ResolvedSeries
from wattline.store.series_resolver import load_series
from wattline.store.tables import (
    assets, group_members, groups, point_transforms, points, system_shares, systems, users, vendor_accounts,
)
from wattline.store.vendor_plants import VendorPlantInfo

POINT_EDITABLE = ("label", "display_order", "visible", "active", "subsystem", "point_type")


def _system_query():
    owner = users.alias("owner")
    return (select(systems.c.asset_id.label("id"), systems.c.display_name, systems.c.alias, systems.c.is_default,
                   systems.c.status, systems.c.owner_user_id, owner.c.username.label("owner"),
                   assets.c.vendor_type, assets.c.vendor_plant_id.label("vendor_site_id"), assets.c.timezone,
                   assets.c.vendor_account_id, assets.c.organization_id, systems.c.created_at)
            .join(assets, assets.c.id == systems.c.asset_id)
            .join(owner, owner.c.id == systems.c.owner_user_id)
            .order_by(systems.c.asset_id))


def alias_taken(conn: Connection, owner_user_id: int, alias: str) -> bool:
    return conn.execute(select(systems.c.asset_id).where(
        systems.c.owner_user_id == owner_user_id, systems.c.alias == alias)).first() is not None


def has_default(conn: Connection, owner_user_id: int) -> bool:
    return conn.execute(select(systems.c.asset_id).where(
        systems.c.owner_user_id == owner_user_id, systems.c.is_default.is_(True))).first() is not None


def clear_default(conn: Connection, owner_user_id: int) -> None:
    conn.execute(update(systems).where(systems.c.owner_user_id == owner_user_id).values(is_default=False))


def insert_system(conn: Connection, asset_id: int, owner_user_id: int, display_name: str, alias: str,
                  is_default: bool) -> None:
    conn.execute(insert(systems).values(asset_id=asset_id, owner_user_id=owner_user_id, display_name=display_name,
                                        alias=alias, is_default=is_default))


def set_status(conn: Connection, system_id: int, status: str) -> None:
    conn.execute(update(systems).where(systems.c.asset_id == system_id).values(status=status))


def system(conn: Connection, system_id: int) -> dict | None:
    """The system's row (id, display_name, alias, owner, vendor_type, vendor_site_id,
    timezone, status, …) with ``shared_with`` (usernames), or None."""
    row = conn.execute(_system_query().where(systems.c.asset_id == system_id)).mappings().first()
    if row is None:
        return None
    out = dict(row)
    out["shared_with"] = frozenset(shared_usernames(conn, [system_id]).get(system_id, ()))
    return out


def list_systems(conn: Connection, *, visible_to_user_id: int | None = None) -> list[dict]:
    """Every system (or those owned by / shared with one user), by id, with ``shared_with``."""
    q = _system_query()
    if visible_to_user_id is not None:
        shared = select(system_shares.c.system_id).where(system_shares.c.user_id == visible_to_user_id)
        q = q.where((systems.c.owner_user_id == visible_to_user_id) | systems.c.asset_id.in_(shared))
    rows = [dict(r) for r in conn.execute(q).mappings()]
    shares = shared_usernames(conn, [r["id"] for r in rows])
    for r in rows:
        r["shared_with"] = frozenset(shares.get(r["id"], ()))
    return rows


def shared_usernames(conn: Connection, system_ids: list[int]) -> dict[int, list[str]]:
    if not system_ids:
        return {}
    out: dict[int, list[str]] = {}
    for sid, name in conn.execute(select(system_shares.c.system_id, users.c.username)
                                  .join(users, users.c.id == system_shares.c.user_id)
                                  .where(system_shares.c.system_id.in_(system_ids))):
        out.setdefault(sid, []).append(name)
    return out


def share(conn: Connection, system_id: int, user_id: int, granted_by: str) -> bool:
    """Grant read access; False (nothing written) if the user had it already."""
    if conn.execute(select(system_shares.c.user_id).where(
            system_shares.c.system_id == system_id, system_shares.c.user_id == user_id)).first():
        return False
    conn.execute(insert(system_shares).values(system_id=system_id, user_id=user_id, granted_by=granted_by))
    return True


def revoke(conn: Connection, system_id: int, user_id: int) -> bool:
    return conn.execute(delete(system_shares).where(
        system_shares.c.system_id == system_id, system_shares.c.user_id == user_id)).rowcount > 0


# -- points ---------------------------------------------------------------------------


def set_point_info(conn: Connection, point_id: int, **values: Any) -> None:
    """Change display fields of a point (:data:`POINT_EDITABLE`); its series id, and so
    its history, stay."""
    bad = set(values) - set(POINT_EDITABLE)
    if bad:
        raise ValueError(f"not editable point fields: {sorted(bad)}")
    if values:
        conn.execute(update(points).where(points.c.id == point_id).values(**values))


def system_points(conn: Connection, system_id: int) -> list[dict]:
    """The system's points by display order (id is the series id)."""
    c = points.c
    rows = conn.execute(select(c.id, c.key, c.metric_type, c.unit, c.vendor_field, c.subsystem, c.point_type,
                               c.label, c.display_order, c.visible, c.active)
                        .where(c.asset_id == system_id).order_by(c.display_order, c.id)).mappings()
    return [dict(r) for r in rows]


def add_transform_version(conn: Connection, point_id: int, effective_from: int, transform: dict,
                          created_by: str | None) -> bool:
    """A new transform version; False (nothing written) if one starts at that instant."""
    if conn.execute(select(point_transforms.c.point_id).where(
            point_transforms.c.point_id == point_id, point_transforms.c.effective_from == effective_from)).first():
        return False
    conn.execute(insert(point_transforms).values(point_id=point_id, effective_from=effective_from,
                                                 transform=transform, created_by=created_by))
    return True


TRANSFORMS_SCANNED_ABOVE = 1_000  # point ids: beyond, every transform is read and filtered here


def transform_versions(conn: Connection, point_ids: Iterable[int]) -> dict[int, list[tuple[int, dict]]]:
    """point id -> [(effective_from, transform)] oldest first."""
    ids = sorted(set(point_ids))
    out: dict[int, list[tuple[int, dict]]] = {}
    if not ids:
        return out
    q = (select(point_transforms.c.point_id, point_transforms.c.effective_from, point_transforms.c.transform)
         .order_by(point_transforms.c.point_id, point_transforms.c.effective_from))
    if len(ids) > TRANSFORMS_SCANNED_ABOVE:
        # a tick's every point (113,000 for 10,000 systems): one scan of the few transforms
        # costs less than binding the ids (measured: 12 % of a 10,000-system poller's CPU)
        wanted = set(ids)
        rows = (r for r in conn.execute(q) if r[0] in wanted)
    else:
        rows = conn.execute(q.where(point_transforms.c.point_id.in_(ids)))
    for pid, eff, tr in rows:
        out.setdefault(pid, []).append((int(eff), tr))
    return out


# -- what polling reads ------------------------------------------------------------------


def pollable_systems(main_reader: Engine, system_ids: list[int] | None = None) -> list[VendorPlantInfo]:
    """Systems not paused that have a vendor account and site id, as the vendor-plant
    facts the fetch helpers take (``plant_id`` is the system id)."""
    q = (select(assets, vendor_accounts.c.base_url, vendor_accounts.c.credentials_encrypted,
                vendor_accounts.c.rate_limits)
         .join(systems, systems.c.asset_id == assets.c.id)
         .join(vendor_accounts, vendor_accounts.c.id == assets.c.vendor_account_id)
         .where(systems.c.status != "paused", assets.c.vendor_plant_id.is_not(None))
         .order_by(assets.c.id))
    if system_ids is not None:
        q = q.where(assets.c.id.in_(system_ids))
    with main_reader.connect() as conn:
        rows = conn.execute(q).mappings().all()
        by_asset: dict[int, list[ResolvedSeries]] = {}
        for s in load_series(conn, [r["id"] for r in rows]):
            by_asset.setdefault(s.asset_id, []).append(s)
        active = {pid for (pid,) in conn.execute(select(points.c.id).where(
            points.c.asset_id.in_([r["id"] for r in rows]), points.c.active.is_(True)))} if rows else set()
    out = []
    for r in rows:
        pts = tuple(s for s in by_asset.get(r["id"], ()) if s.series_id in active)  # inactive points: not collected
        out.append(VendorPlantInfo(
            plant_id=r["id"], name=r["name"], timezone=r["timezone"], organization_id=r["organization_id"],
            vendor_type=r["vendor_type"], vendor_plant_id=r["vendor_plant_id"],
            vendor_account_id=r["vendor_account_id"], base_url=r["base_url"],
            credentials_encrypted=r["credentials_encrypted"], start_operating_time=r["start_operating_time"],
            series={s.point_key: s.series_id for s in pts}, rate_limits=r["rate_limits"], points=pts))
    return out


# -- settings and removal (admin) ----------------------------------------------------------

SETTINGS_COLUMNS = ("display_name", "alias", "status")


def update_system(conn: Connection, system_id: int, *, timezone: str | None = None, **values: Any) -> None:
    """Change a system's row (:data:`SETTINGS_COLUMNS`) and/or its asset's display timezone."""
    bad = set(values) - set(SETTINGS_COLUMNS)
    if bad:
        raise ValueError(f"not editable system fields: {sorted(bad)}")
    if values:
        conn.execute(update(systems).where(systems.c.asset_id == system_id).values(**values))
    if timezone is not None:
        conn.execute(update(assets).where(assets.c.id == system_id).values(timezone=timezone))


def alias_taken_by_other(conn: Connection, owner_user_id: int, alias: str, system_id: int) -> bool:
    """True if another system of the owner already uses ``alias``."""
    return conn.execute(select(systems.c.asset_id).where(
        systems.c.owner_user_id == owner_user_id, systems.c.alias == alias,
        systems.c.asset_id != system_id)).first() is not None


def remove_system(conn: Connection, system_id: int, *, removed_at: int, removed_by: str) -> dict:
    """Remove a system's registry rows, keeping its asset, points and telemetry.

    Deleted: its shares, its memberships of composites, its ``systems`` row, and its
    vendor account when no other asset uses it (the credentials of a removed system
    are not kept). Kept: the asset (renamed ``removed/<id>/<old name>`` so the name is
    free again, its ``attributes.removed`` saying when, by whom and what it was) and
    its points (made inactive), so every series id and stored reading stays.
    Returns what was removed (counts and the old row)."""
    row = conn.execute(_system_query().where(systems.c.asset_id == system_id)).mappings().first()
    if row is None:
        return {}
    old = dict(row)
    shares_n = conn.execute(delete(system_shares).where(system_shares.c.system_id == system_id)).rowcount
    composite_ids = select(groups.c.id).where(groups.c.kind == "composite")
    members_n = conn.execute(delete(group_members).where(
        group_members.c.asset_id == system_id, group_members.c.group_id.in_(composite_ids))).rowcount
    conn.execute(delete(systems).where(systems.c.asset_id == system_id))
    asset = conn.execute(select(assets.c.name, assets.c.attributes, assets.c.vendor_account_id)
                         .where(assets.c.id == system_id)).mappings().one()
    attributes = dict(asset["attributes"] or {})
    attributes["removed"] = {"at": int(removed_at), "by": removed_by, "display_name": old["display_name"],
                             "alias": old["alias"], "owner": old["owner"], "name": asset["name"],
                             "organization_id": old["organization_id"]}
    conn.execute(update(assets).where(assets.c.id == system_id).values(
        name=f"removed/{system_id}/{asset['name']}"[:200], attributes=attributes, vendor_account_id=None))
    conn.execute(update(points).where(points.c.asset_id == system_id).values(active=False))
    account_removed = False
    account = asset["vendor_account_id"]
    if account is not None and conn.execute(select(assets.c.id).where(
            assets.c.vendor_account_id == account)).first() is None:
        account_removed = conn.execute(delete(vendor_accounts).where(vendor_accounts.c.id == account)).rowcount > 0
    return {"system": old, "shares": shares_n, "composite_memberships": members_n,
            "vendor_account_removed": account_removed}


def removed_attributes(conn: Connection, asset_id: int) -> dict | None:
    """``attributes.removed`` of an asset whose system was removed, or None."""
    attrs = conn.execute(select(assets.c.attributes).where(assets.c.id == asset_id)).scalar()
    return (attrs or {}).get("removed") if isinstance(attrs, dict) else None


def point_counts(conn: Connection, system_ids: list[int]) -> dict[int, int]:
    """system id -> number of points."""
    if not system_ids:
        return {}
    return {sid: int(n) for sid, n in conn.execute(
        select(points.c.asset_id, func.count()).where(points.c.asset_id.in_(system_ids))
        .group_by(points.c.asset_id))}


def set_default(conn: Connection, system_id: int) -> None:
    """Make ``system_id`` its owner's default system (and no other)."""
    owner = conn.execute(select(systems.c.owner_user_id).where(systems.c.asset_id == system_id)).scalar()
    if owner is not None:
        clear_default(conn, owner)
        conn.execute(update(systems).where(systems.c.asset_id == system_id).values(is_default=True))

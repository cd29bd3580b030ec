"""Composites (seed 003 ``composite_systems``) on the main database: groups of kind
``composite`` with an owner, slug, description, favourite flag and ordered member
systems (``group_members.position``), and what their latest values need (the members'
points and battery capacities).

Writes take the caller's transaction (``with dbs.main.begin() as conn``); the rules
(slug shape, members readable by the creator, who may change one) live in
:mod:`wattline.system_admin`.
"""

from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import Connection, delete, insert, select, update

from wattline.domain.groups import battery_capacity_kwh
from wattline.store.tables import assets, group_members, groups, points, systems, users

KIND = "composite"
EDITABLE = ("slug", "name", "description", "favourite", "owner_user_id")


def _query():
    owner = users.alias("owner")
    return (select(groups.c.id, groups.c.organization_id, groups.c.slug, groups.c.name, groups.c.description,
                   groups.c.favourite, groups.c.owner_user_id, groups.c.timezone,
                   owner.c.username.label("owner"))
            .outerjoin(owner, owner.c.id == groups.c.owner_user_id)
            .where(groups.c.kind == KIND)
            .order_by(groups.c.id))


def _with_members(conn: Connection, rows: list[dict]) -> list[dict]:
    members = member_ids(conn, [r["id"] for r in rows])
    for r in rows:
        r["favourite"] = bool(r["favourite"])
        r["member_ids"] = members.get(r["id"], [])
    return rows


def member_ids(conn: Connection, composite_ids: Iterable[int]) -> dict[int, list[int]]:
    """composite id -> member system ids by position."""
    ids = sorted(set(composite_ids))
    out: dict[int, list[int]] = {}
    if not ids:
        return out
    for gid, aid in conn.execute(select(group_members.c.group_id, group_members.c.asset_id)
                                 .where(group_members.c.group_id.in_(ids))
                                 .order_by(group_members.c.group_id, group_members.c.position,
                                           group_members.c.asset_id)):
        out.setdefault(gid, []).append(aid)
    return out


def get(conn: Connection, composite_id: int) -> dict | None:
    """The composite (id, organization_id, slug, name, description, favourite,
    owner_user_id, owner (username or None), member_ids), or None."""
    rows = [dict(r) for r in conn.execute(_query().where(groups.c.id == composite_id)).mappings()]
    return _with_members(conn, rows)[0] if rows else None


def by_slug(conn: Connection, slug: str) -> list[dict]:
    """Composites with this slug (one per organization at most), by id."""
    return _with_members(conn, [dict(r) for r in conn.execute(_query().where(groups.c.slug == slug)).mappings()])


def list_composites(conn: Connection) -> list[dict]:
    """Every composite, by id, with its members."""
    return _with_members(conn, [dict(r) for r in conn.execute(_query()).mappings()])


def slug_taken(conn: Connection, organization_id: int, slug: str, *, other_than: int | None = None) -> bool:
    q = select(groups.c.id).where(groups.c.organization_id == organization_id, groups.c.kind == KIND,
                                  groups.c.slug == slug)
    if other_than is not None:
        q = q.where(groups.c.id != other_than)
    return conn.execute(q).first() is not None


def name_taken(conn: Connection, organization_id: int, name: str, *, other_than: int | None = None) -> bool:
    q = select(groups.c.id).where(groups.c.organization_id == organization_id, groups.c.kind == KIND,
                                  groups.c.name == name)
    if other_than is not None:
        q = q.where(groups.c.id != other_than)
    return conn.execute(q).first() is not None


def insert_composite(conn: Connection, organization_id: int, slug: str, name: str, members: list[int], *,
                     owner_user_id: int | None = None, description: str | None = None,
                     favourite: bool = False) -> int:
    gid = conn.execute(insert(groups).values(
        organization_id=organization_id, kind=KIND, name=name, slug=slug, owner_user_id=owner_user_id,
        description=description, favourite=bool(favourite))).inserted_primary_key[0]
    set_members(conn, gid, members)
    return gid


def update_composite(conn: Connection, composite_id: int, **values: Any) -> None:
    bad = set(values) - set(EDITABLE)
    if bad:
        raise ValueError(f"not editable composite fields: {sorted(bad)}")
    if values:
        conn.execute(update(groups).where(groups.c.id == composite_id, groups.c.kind == KIND).values(**values))


def set_members(conn: Connection, composite_id: int, members: list[int]) -> None:
    """Replace the members; ``members`` in display order (position 0, 1, ...)."""
    conn.execute(delete(group_members).where(group_members.c.group_id == composite_id))
    if members:
        conn.execute(insert(group_members), [dict(group_id=composite_id, asset_id=m, position=i)
                                             for i, m in enumerate(members)])


def delete_composite(conn: Connection, composite_id: int) -> bool:
    conn.execute(delete(group_members).where(group_members.c.group_id == composite_id))
    return conn.execute(delete(groups).where(groups.c.id == composite_id, groups.c.kind == KIND)).rowcount > 0


def composites_of_systems(conn: Connection, system_ids: Iterable[int]) -> dict[int, set[int]]:
    """system id -> ids of the composites it is a member of (every given id is a key)."""
    ids = sorted(set(int(s) for s in system_ids))
    out: dict[int, set[int]] = {s: set() for s in ids}
    if not ids:
        return out
    for aid, gid in conn.execute(select(group_members.c.asset_id, group_members.c.group_id)
                                 .join(groups, groups.c.id == group_members.c.group_id)
                                 .where(groups.c.kind == KIND, group_members.c.asset_id.in_(ids))):
        out[aid].add(gid)
    return out


def member_points(conn: Connection, system_ids: list[int]) -> list[dict]:
    """Visible, active points of the systems: system_id, series_id, key, metric_type,
    unit, label, display_order; by system (in the given order), then display order."""
    if not system_ids:
        return []
    c = points.c
    rows = [dict(r) for r in conn.execute(
        select(c.asset_id.label("system_id"), c.id.label("series_id"), c.key, c.metric_type, c.unit, c.label,
               c.subsystem, c.point_type, c.display_order)
        .where(c.asset_id.in_(system_ids), c.visible.is_(True), c.active.is_(True))
        .order_by(c.display_order, c.id)).mappings()]
    rank = {s: i for i, s in enumerate(system_ids)}
    return sorted(rows, key=lambda r: rank[r["system_id"]])  # stable: display order within a system


def capacities_kwh(conn: Connection, system_ids: Iterable[int]) -> dict[int, float | None]:
    """system id -> battery capacity from its asset's attributes, kWh (None: unknown)."""
    ids = [int(s) for s in system_ids]
    if not ids:
        return {}
    return {aid: battery_capacity_kwh(attrs) for aid, attrs in conn.execute(
        select(assets.c.id, assets.c.attributes).where(assets.c.id.in_(ids)))}


def existing_system_ids(conn: Connection, ids: list[int]) -> set[int]:
    if not ids:
        return set()
    return {r[0] for r in conn.execute(select(systems.c.asset_id).where(systems.c.asset_id.in_(ids)))}

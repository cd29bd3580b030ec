"""Groups in the registry (main database): kind, timezone, members.

A group's timezone is its own ``groups.timezone`` when set, else its organization's.
Read with the pipeline's read-only handle; :func:`set_timezone` is for provisioning.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select, update

from wattline.domain import timeutil
from wattline.store.tables import assets, group_members, groups, organizations


@dataclass(frozen=True)
class Member:
    asset_id: int
    kind: str
    timezone: str
    capacity_kw: float | None
    attributes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Group:
    id: int
    kind: str
    name: str
    timezone: str  # effective: the group's own, else its organization's
    members: tuple[Member, ...]

    @property
    def member_ids(self) -> list[int]:
        return [m.asset_id for m in self.members]


def group(conn: Connection, group_id: int) -> Group | None:
    """The group ``group_id`` with its effective timezone and members, or None."""
    row = conn.execute(
        select(groups.c.id, groups.c.kind, groups.c.name,
               func.coalesce(groups.c.timezone, organizations.c.timezone).label("tz"))
        .join(organizations, organizations.c.id == groups.c.organization_id)
        .where(groups.c.id == group_id)).first()
    if row is None:
        return None
    members = conn.execute(
        select(assets.c.id, assets.c.kind, assets.c.timezone, assets.c.capacity_kw, assets.c.attributes)
        .join(group_members, group_members.c.asset_id == assets.c.id)
        .where(group_members.c.group_id == group_id).order_by(assets.c.id)).all()
    return Group(row.id, row.kind, row.name, row.tz or "UTC",
                 tuple(Member(m[0], m[1], m[2], m[3], dict(m[4] or {})) for m in members))


def groups_of(conn: Connection, asset_ids: Iterable[int], kind: str | None = None) -> list[int]:
    """Ids of the groups (of ``kind`` if given) having any of ``asset_ids`` as a member."""
    ids = sorted({int(a) for a in asset_ids})
    if not ids:
        return []
    q = (select(group_members.c.group_id).distinct()
         .join(groups, groups.c.id == group_members.c.group_id)
         .where(group_members.c.asset_id.in_(ids)))
    if kind is not None:
        q = q.where(groups.c.kind == kind)
    return sorted(r[0] for r in conn.execute(q))


def member_ids(conn: Connection, group_id: int) -> list[int]:
    return sorted(r[0] for r in conn.execute(
        select(group_members.c.asset_id).where(group_members.c.group_id == group_id)))


def assets_of_kind(conn: Connection, asset_ids: Iterable[int], kind: str) -> list[int]:
    ids = sorted({int(a) for a in asset_ids})
    if not ids:
        return []
    return [r[0] for r in conn.execute(
        select(assets.c.id).where(assets.c.id.in_(ids), assets.c.kind == kind).order_by(assets.c.id))]


def set_timezone(conn: Connection, group_id: int, tz: str | None) -> None:
    """Give the group its own IANA zone (None: follow its organization's)."""
    if tz is not None:
        timeutil.zone(tz)  # raises TimezoneError for an unknown zone
    conn.execute(update(groups).where(groups.c.id == group_id).values(timezone=tz))

"""What the energy-flow (Sankey) API reads: composites by slug or id, the power points
of systems, and their energies per short bucket from the ledger.

The energies come from the ledger columns of the readings table (power points are
integrated by the pipeline: trapezoid, signed), summed per bucket of ``bucket_s``
seconds by the database; an entry that began before the window counts only for its
part inside it (rule 2: a delta belongs to the time it covers).
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, Float, and_, case, cast, func, or_, select

from wattline.store.tables import assets, group_members, groups, points, readings, users


def composite(conn: Connection, ref: str) -> dict | None:
    """The group of kind ``composite`` named by ``ref`` (its slug, or its id as digits):
    ``{id, slug, name, organization_id, owner, member_ids}`` with the members in their
    order, or None."""
    g = groups.c
    q = (select(g.id, g.slug, g.name, g.organization_id, users.c.username.label("owner"))
         .select_from(groups.outerjoin(users, users.c.id == g.owner_user_id))
         .where(g.kind == "composite"))
    ref = (ref or "").strip()
    if ref.isdigit() and len(ref) <= 10:
        q = q.where(or_(g.id == int(ref), g.slug == ref)).order_by((g.id == int(ref)).desc())
    else:
        q = q.where(g.slug == ref)
    row = conn.execute(q.limit(1)).mappings().first()
    if row is None:
        return None
    out = dict(row)
    out["member_ids"] = [r[0] for r in conn.execute(
        select(group_members.c.asset_id).where(group_members.c.group_id == row["id"])
        .order_by(group_members.c.position, group_members.c.asset_id))]
    return out


def flow_points(conn: Connection, system_ids: list[int], keys: tuple[str, ...]) -> dict[int, dict[str, int]]:
    """system id -> {point key: series id} of the active points among ``keys``."""
    if not system_ids:
        return {}
    out: dict[int, dict[str, int]] = {sid: {} for sid in system_ids}
    for asset_id, key, pid in conn.execute(
            select(points.c.asset_id, points.c.key, points.c.id)
            .where(points.c.asset_id.in_(system_ids), points.c.key.in_(keys), points.c.active.is_(True))):
        out[asset_id][key] = pid
    return out


def vendor_types(conn: Connection, system_ids: list[int]) -> dict[int, str | None]:
    """system id -> vendor type."""
    if not system_ids:
        return {}
    return {r[0]: r[1] for r in conn.execute(select(assets.c.id, assets.c.vendor_type)
                                             .where(assets.c.id.in_(system_ids)))}


def bucket_energies_milli_wh(telemetry: Engine, series_ids: list[int], start_s: int, end_s: int,
                             bucket_s: int) -> list[tuple[int, int, float]]:
    """Ledger energy per series and bucket of the window ``(start_s, end_s]``.

    Returns ``[(series_id, bucket, milli_wh)]``: bucket ``k`` covers
    ``(start_s + k * bucket_s, start_s + (k + 1) * bucket_s]`` by the entries' end
    times; an entry that starts before ``start_s`` counts in proportion to its part
    after it. Signed for signed power points (battery, grid).
    """
    if not series_ids or end_s <= start_s:
        return []
    r = readings.c
    span = r.ts - r.start_ts
    inside = case((and_(r.start_ts < start_s, span > 0),
                   cast(r.delta_milli_wh, Float) * (r.ts - start_s) / cast(span, Float)),
                  else_=cast(r.delta_milli_wh, Float))
    bucket = ((r.ts - start_s - 1) // bucket_s).label("bucket")
    q = (select(r.series_id, bucket, func.sum(inside).label("milli_wh"))
         .where(r.series_id.in_(series_ids), r.ts > start_s, r.ts <= end_s, r.delta_milli_wh.is_not(None))
         .group_by(r.series_id, bucket))
    with telemetry.connect() as conn:
        return [(int(s), int(b), float(v or 0.0)) for s, b, v in conn.execute(q)]

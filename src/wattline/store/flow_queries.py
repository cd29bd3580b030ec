"""What the energy-flow (Sankey) API reads: the power points of systems, their vendors,
and their energies per short bucket from the ledger.

The energies come from the ledger columns of the readings table (power points are
integrated by the pipeline: trapezoid, signed), summed per bucket of ``bucket_s``
seconds by the database; an entry that crosses the window's edge counts only for its
part inside it (rule 2: a delta belongs to the time it covers). :func:`full_days`
fingerprints the stored local days, so the API can reuse the split of a day whose
readings did not change.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, Float, and_, case, cast, func, or_, select

from wattline.store.tables import aggregates, points, readings

# a ledger entry that ends this long after the window's end can still reach into it
_STRADDLE_S = 3600


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


def bucket_energies_milli_wh(telemetry: Engine, series_ids: list[int], start_s: int, end_s: int,
                             bucket_s: int) -> list[tuple[int, int, float]]:
    """Ledger energy per series and bucket of the window ``(start_s, end_s]``.

    Returns ``[(series_id, bucket, milli_wh)]``: bucket ``k`` covers
    ``(start_s + k * bucket_s, start_s + (k + 1) * bucket_s]`` by the entries' end
    times (clipped to the window); an entry that crosses either end of the window
    counts for its part inside it, in proportion to time (so adjacent windows add up).
    Signed for signed power points (battery, grid).
    """
    if not series_ids or end_s <= start_s:
        return []
    r = readings.c
    span = cast(r.ts - r.start_ts, Float)
    lo = case((r.start_ts < start_s, start_s), else_=r.start_ts)
    hi = case((r.ts > end_s, end_s), else_=r.ts)
    inside = case((and_(or_(r.start_ts < start_s, r.ts > end_s), r.ts > r.start_ts),
                   cast(r.delta_milli_wh, Float) * (hi - lo) / span),
                  else_=cast(r.delta_milli_wh, Float))
    bucket = ((hi - start_s - 1) // bucket_s).label("bucket")
    q = (select(r.series_id, bucket, func.sum(inside).label("milli_wh"))
         .where(r.series_id.in_(series_ids), r.ts > start_s, r.ts <= end_s + _STRADDLE_S, r.start_ts < end_s,
                r.delta_milli_wh.is_not(None))
         .group_by(r.series_id, bucket))
    with telemetry.connect() as conn:
        return [(int(s), int(b), float(v or 0.0)) for s, b, v in conn.execute(q)]


def full_days(telemetry: Engine, series_ids: list[int], start_s: int, end_s: int
              ) -> list[tuple[int, int, tuple]]:
    """The stored local days (``aggregates``, period ``day``) of the series that lie
    wholly inside ``(start_s, end_s]``: ``[(day_start, day_end, fingerprint)]`` by
    start, where the fingerprint (each series' energy, entry count, newest reading and
    flags) changes whenever a reading of that day is added or re-derived."""
    if not series_ids or end_s <= start_s:
        return []
    a = aggregates.c
    q = (select(a.bucket_start, a.bucket_end, a.series_id, a.energy_milli_wh, a.ledger_count, a.last_ts,
                a.value_count, a.flags)
         .where(a.series_id.in_(series_ids), a.period == "day", a.bucket_start >= start_s, a.bucket_end <= end_s)
         .order_by(a.bucket_start, a.series_id))
    days: dict[tuple[int, int], list] = {}
    with telemetry.connect() as conn:
        for row in conn.execute(q):
            days.setdefault((int(row[0]), int(row[1])), []).append(tuple(row[2:]))
    return [(b, e, tuple(fp)) for (b, e), fp in sorted(days.items())]

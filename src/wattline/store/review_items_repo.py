"""Review items (telemetry ``review_items``): what reconciliation found for a person.

An item is unique by its ``dedup_key`` (rule, device, local day): opening the same
finding again inserts nothing. Resolving records who and why; resolving a resolved
item changes nothing. Instants are UTC epoch seconds.
"""

from __future__ import annotations

from typing import Sequence

from sqlalchemy import Connection, func, select, update

from wattline.store.tables import review_items

_INSERT_COLUMNS = ("organization_id", "kind", "asset_id", "classroom_id", "esp32_name", "period_start",
                   "period_end", "details", "status", "created_at", "resolved_at", "resolved_by", "resolution",
                   "dedup_key")


def existing_keys(conn: Connection, keys: Sequence[str]) -> set[str]:
    """Which of these dedup keys are stored."""
    if not keys:
        return set()
    found: set[str] = set()
    keys = list(keys)
    for i in range(0, len(keys), 500):
        found.update(conn.execute(select(review_items.c.dedup_key)
                                  .where(review_items.c.dedup_key.in_(keys[i:i + 500]))).scalars())
    return found


def add_items(conn: Connection, rows: Sequence[dict]) -> int:
    """Insert items (dicts of the columns) whose dedup key is not stored yet; returns
    how many were new."""
    if not rows:
        return 0
    known = existing_keys(conn, [r["dedup_key"] for r in rows])
    new = {r["dedup_key"]: r for r in rows if r["dedup_key"] not in known}  # one per key
    if not new:
        return 0
    # ON CONFLICT DO NOTHING: a concurrent run that inserted the same key first wins, quietly
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    result = conn.execute(insert(review_items).on_conflict_do_nothing(index_elements=["dedup_key"]),
                          [{c: r.get(c) for c in _INSERT_COLUMNS} for r in new.values()])
    n = result.rowcount
    return len(new) if n is None or n < 0 else int(n)  # some drivers do not count an executemany


def list_items(conn: Connection, *, organization_id: int | None = None, status: str | None = None,
               kind: str | None = None, classroom_id: int | None = None, limit: int = 500) -> list[dict]:
    """Items, newest first, filtered by what is given."""
    q = select(review_items).order_by(review_items.c.id.desc()).limit(limit)
    for col, value in ((review_items.c.organization_id, organization_id), (review_items.c.status, status),
                       (review_items.c.kind, kind), (review_items.c.classroom_id, classroom_id)):
        if value is not None:
            q = q.where(col == value)
    return [dict(r) for r in conn.execute(q).mappings()]


def get(conn: Connection, item_id: int) -> dict | None:
    row = conn.execute(select(review_items).where(review_items.c.id == item_id)).mappings().first()
    return dict(row) if row else None


def resolve(conn: Connection, item_id: int, *, by: str, note: str, now: int) -> tuple[dict | None, bool]:
    """Mark an open item resolved by ``by`` with ``note``. Returns (the item, whether
    this call changed it): (None, False) if there is no such item, (item, False) if it
    was resolved already."""
    changed = conn.execute(update(review_items).where(review_items.c.id == item_id, review_items.c.status == "open")
                           .values(status="resolved", resolved_at=now, resolved_by=by, resolution=note)).rowcount
    return get(conn, item_id), bool(changed)


def counts(conn: Connection, organization_id: int | None = None) -> dict[str, int]:
    """Open items per kind."""
    q = (select(review_items.c.kind, func.count()).where(review_items.c.status == "open")
         .group_by(review_items.c.kind))
    if organization_id is not None:
        q = q.where(review_items.c.organization_id == organization_id)
    return {k: int(n) for k, n in conn.execute(q)}


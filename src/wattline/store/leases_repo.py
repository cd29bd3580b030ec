"""Resource leases on the telemetry database: one holder at a time per resource
("plant:7"), across processes. A lease expires unless its holder renews it, so a
holder killed with SIGKILL frees its resources by itself. Instants are UTC epoch ms.

Every change is one conditional statement inside one transaction, so two processes
asking at once never both get a resource (PostgreSQL re-checks the condition on the
row it waited for; SQLite takes its write lock at BEGIN)."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, delete, select, update

from wattline.store.engines import write_transaction
from wattline.store.tables import resource_leases

_C = resource_leases.c


def _insert(conn: Connection):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(resource_leases)


def acquire(telemetry: Engine, resources: list[str], holder: str, now_ms: int, lease_ms: int) -> set[str]:
    """Take the ``resources`` that are free (no lease, an expired one, or ``holder``'s
    own) until ``now_ms + lease_ms``; returns those taken."""
    names = sorted(set(resources))
    if not names:
        return set()
    until = now_ms + lease_ms
    with write_transaction(telemetry) as conn:
        got = {r[0] for r in conn.execute(
            _insert(conn).values([{"resource": n, "holder": holder, "expires_ms": until} for n in names])
            .on_conflict_do_nothing(index_elements=["resource"]).returning(_C.resource))}
        rest = [n for n in names if n not in got]
        if rest:
            got |= {r[0] for r in conn.execute(
                update(resource_leases)
                .where(_C.resource.in_(rest), (_C.expires_ms < now_ms) | (_C.holder == holder))
                .values(holder=holder, expires_ms=until).returning(_C.resource))}
    return got


def renew(telemetry: Engine, holder: str, now_ms: int, lease_ms: int) -> set[str]:
    """Extend every lease ``holder`` still has; returns their resources (one taken over
    by another after it expired is no longer among them)."""
    with write_transaction(telemetry) as conn:
        return {r[0] for r in conn.execute(update(resource_leases).where(_C.holder == holder)
                                           .values(expires_ms=now_ms + lease_ms).returning(_C.resource))}


def release(telemetry: Engine, holder: str, resources: list[str] | None = None) -> None:
    """Drop ``holder``'s leases (of ``resources``, or all); another's are untouched."""
    q = delete(resource_leases).where(_C.holder == holder)
    if resources is not None:
        q = q.where(_C.resource.in_(sorted(set(resources))))
    with write_transaction(telemetry) as conn:
        conn.execute(q)


def holders(telemetry: Engine, now_ms: int) -> dict[str, str]:
    """resource -> holder of every lease not expired at ``now_ms`` (status, tests)."""
    with telemetry.connect() as conn:
        return {r[0]: r[1] for r in conn.execute(select(_C.resource, _C.holder).where(_C.expires_ms >= now_ms))}

"""The registry's version (main 0017): a number that moves on every write of what
polling reads (assets, systems, points, point_transforms, vendor_accounts), moved by
triggers in the writer's own transaction, so no code path has to remember it.

A reader that reads the version *before* the data it caches is never behind: a write
committed after the version was read shows as a new version at the next look.
"""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

TABLES = ("assets", "systems", "points", "point_transforms", "vendor_accounts")
# triggers the migration made: SQLite one per table and operation, PostgreSQL one per table
TRIGGERS = {"sqlite": 3 * len(TABLES), "postgresql": len(TABLES)}

_QUERIES = {
    "sqlite": text("SELECT (SELECT version FROM registry_version WHERE id = 1), "
                   "(SELECT count(*) FROM sqlite_master WHERE type = 'trigger' "
                   "AND name LIKE 'registry\\_changed\\_%' ESCAPE '\\')"),
    "postgresql": text("SELECT (SELECT version FROM registry_version WHERE id = 1), "
                       "(SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D' "
                       "AND tgname LIKE 'registry\\_changed\\_%')"),
}


def current(engine: Engine) -> int | None:
    """The registry's version now, or None when it cannot be trusted (an unmigrated
    database, another dialect, a trigger missing or disabled): then cache nothing."""
    q = _QUERIES.get(engine.dialect.name)
    if q is None:
        return None
    try:
        with engine.connect() as conn:
            version, triggers = conn.execute(q).one()
    except DBAPIError:
        return None
    if version is None or int(triggers) != TRIGGERS[engine.dialect.name]:
        return None
    return int(version)

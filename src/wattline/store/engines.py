"""Engines for the two databases.

The telemetry engine is read-write. The main (registry) database is opened twice:
``main_engine`` for registry management (CLI, API admin), and ``main_reader`` for the
pipeline and jobs, which cannot write: SQLite opens the file read-only, PostgreSQL
sessions start with ``default_transaction_read_only``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    # 256 MB page cache: MACHINE-LIMITS.md measured ~1.7x bulk-insert speed with it
    cur.execute("PRAGMA cache_size=-262144")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


def _sqlite_readonly_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA query_only=ON")
    cur.close()


def make_engine(url: str, *, read_only: bool = False) -> Engine:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        if read_only:
            # mode=ro at the file level and query_only inside: writes raise
            path = Path(u.database).resolve()
            engine = create_engine(
                f"sqlite:///file:{path}?mode=ro&uri=true",
                connect_args={"check_same_thread": False},
            )
            event.listen(engine, "connect", _sqlite_readonly_pragmas)
            return engine
        engine = create_engine(u, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if u.get_backend_name() == "postgresql":
        if u.drivername == "postgresql":
            u = u.set(drivername="postgresql+psycopg")
        kwargs: dict = {"pool_pre_ping": True}
        if read_only:
            kwargs["connect_args"] = {"options": "-c default_transaction_read_only=on"}
        return create_engine(u, **kwargs)
    raise ValueError(f"unsupported database {u.get_backend_name()!r}: use sqlite or postgresql")


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


@dataclass
class Databases:
    """The three handles a process needs."""

    main: Engine  # registry, read-write: CLI and API administration only
    main_reader: Engine  # registry, read-only: pipeline and jobs
    telemetry: Engine

    def dispose(self) -> None:
        for e in (self.main, self.main_reader, self.telemetry):
            e.dispose()


def open_databases(main_url: str, telemetry_url: str) -> Databases:
    return Databases(
        main=make_engine(main_url),
        main_reader=make_engine(main_url, read_only=True),
        telemetry=make_engine(telemetry_url),
    )

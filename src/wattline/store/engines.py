"""Engines for the two databases.

The telemetry engine is read-write. The main (registry) database is opened twice:
``main_engine`` for registry management (CLI, API admin), and ``main_reader`` for the
pipeline and jobs, which cannot write: SQLite opens the file read-only, PostgreSQL
sessions start with ``default_transaction_read_only``.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from wattline.store.wal_checkpoints import BACKSTOP_PAGES, JOURNAL_SIZE_LIMIT, WalCheckpointer


WRITE_LOCK_OPTION = "wattline_write_lock"

# Names for the handles that layers above store/ hold and pass back in, so that they
# need not import SQLAlchemy for a type hint.
DbEngine = Engine
DbConnection = Connection


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    # 256 MB page cache: MACHINE-LIMITS.md measured ~1.7x bulk-insert speed with it
    cur.execute("PRAGMA cache_size=-262144")
    cur.execute("PRAGMA temp_store=MEMORY")
    # checkpoints run in a background thread (store/wal_checkpoints.py); this is the backstop
    cur.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
    cur.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
    cur.close()
    dbapi_conn.isolation_level = None  # transactions are begun by _sqlite_begin


def _sqlite_begin(conn) -> None:
    # The driver's own transaction handling is off (see _sqlite_pragmas), so we say
    # BEGIN ourselves: IMMEDIATE for writers that read before they write (the pipeline),
    # so two of them queue for the lock instead of one failing to upgrade its snapshot.
    immediate = conn.get_execution_options().get(WRITE_LOCK_OPTION)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


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
        event.listen(engine, "begin", _sqlite_begin)
        if u.database and u.database != ":memory:":
            checkpointer = WalCheckpointer(str(Path(u.database).resolve()))
            event.listen(engine, "commit", lambda _conn: checkpointer.notify())
            engine.wattline_checkpointer = checkpointer  # stopped by dispose_engine
        return engine
    if u.get_backend_name() == "postgresql":
        if u.drivername == "postgresql":
            u = u.set(drivername="postgresql+psycopg")
        kwargs: dict = {"pool_pre_ping": True}
        if read_only:
            kwargs["connect_args"] = {"options": "-c default_transaction_read_only=on"}
        return create_engine(u, **kwargs)
    raise ValueError(f"unsupported database {u.get_backend_name()!r}: use sqlite or postgresql")


@contextmanager
def write_transaction(engine: Engine, lock_keys: list[int] = ()):
    """A transaction for read-then-write work on ``lock_keys`` (series ids): on SQLite it
    takes the write lock at BEGIN; on PostgreSQL it takes transaction-scoped advisory
    locks on the keys, in order, so concurrent writers of the same series queue."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_LOCK_OPTION: True})
        with conn.begin():
            if conn.dialect.name == "postgresql" and lock_keys:
                keys = ", ".join(str(int(k)) for k in sorted(set(lock_keys)))
                conn.exec_driver_sql(
                    f"SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest(ARRAY[{keys}]::bigint[]) AS k ORDER BY k) s")
            yield conn


def dispose_engine(engine: Engine) -> None:
    """Stop the engine's WAL checkpointer (after a last checkpoint) and close its pool."""
    checkpointer = getattr(engine, "wattline_checkpointer", None)
    if checkpointer is not None:
        checkpointer.stop()
    engine.dispose()


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
            dispose_engine(e)


def open_databases(main_url: str, telemetry_url: str) -> Databases:
    return Databases(
        main=make_engine(main_url),
        main_reader=make_engine(main_url, read_only=True),
        telemetry=make_engine(telemetry_url),
    )

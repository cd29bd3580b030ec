"""Apply the Alembic migrations of both databases (``wattline db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from wattline.store.engines import write_transaction

# advisory-lock key of a migration on PostgreSQL (SQLite: the write lock from BEGIN)
MIGRATION_LOCK_KEY = 0x5761_7474  # "Watt"

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(which: str, connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS / which))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, which: str, revision: str = "head") -> None:
    """Bring database ``which`` ("main" or "telemetry") to ``revision``."""
    # two processes starting together (two `wattline demo`, serve and a worker) queue
    # here: the second finds the database at head instead of failing half-way
    with write_transaction(engine, [MIGRATION_LOCK_KEY]) as conn:
        command.upgrade(alembic_config(which, conn), revision)


def upgrade_all(main: Engine, telemetry: Engine) -> None:
    upgrade(main, "main")
    upgrade(telemetry, "telemetry")

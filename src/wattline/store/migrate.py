"""Apply the Alembic migrations of both databases (``wattline db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(which: str, connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS / which))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, which: str, revision: str = "head") -> None:
    """Bring database ``which`` ("main" or "telemetry") to ``revision``."""
    with engine.begin() as conn:
        command.upgrade(alembic_config(which, conn), revision)


def upgrade_all(main: Engine, telemetry: Engine) -> None:
    upgrade(main, "main")
    upgrade(telemetry, "telemetry")

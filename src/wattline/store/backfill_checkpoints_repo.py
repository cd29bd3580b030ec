"""Backfill checkpoints (table ``backfill_checkpoints``): how far a plant's backfill
fetched, so a rerun resumes there. (Not the SQLite WAL checkpoints of the engines.)"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select

from wattline.store import bulk
from wattline.store.tables import backfill_checkpoints

COLUMNS = ("plant_id", "last_ts", "target_end_ts", "chunks_done", "records", "updated_at")


def fetched_until(telemetry: Engine, plant_id: int) -> int | None:
    """Epoch seconds up to which the plant's backfill has stored what it fetched, or None."""
    with telemetry.connect() as conn:
        return conn.execute(select(backfill_checkpoints.c.last_ts)
                            .where(backfill_checkpoints.c.plant_id == plant_id)).scalar()


def save(telemetry: Engine, plant_id: int, *, fetched_until: int, target_end: int, chunks: int, records: int,
         now: datetime) -> None:
    with telemetry.begin() as conn:
        bulk.upsert(conn, backfill_checkpoints, COLUMNS,
                    [(plant_id, fetched_until, target_end, chunks, records, now)], key=("plant_id",))

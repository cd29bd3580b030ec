"""Shared set-up of tests/test_point_aggs.py and tests/test_historical_api.py: users,
selectronic systems (seed 003 point keys), readings through the real pipeline."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select, update

from wattline import system_admin
from wattline.domain.readings import ReadingBatch
from wattline.security.users import create_user
from wattline.store import systems_repo
from wattline.store.tables import aggregates, assets

PASSWORD = "a long test password"
CREDS = {"email": "demo@wattline.local", "password": "wattline-demo"}


def users(ctx, *pairs) -> None:
    with ctx.dbs.main.begin() as conn:
        for name, role in pairs:
            create_user(conn, name, PASSWORD, role)


def add_system(ctx, owner: str, name: str, site: str, tz: str = "UTC", capacity_kwh: float | None = None) -> int:
    with ctx.dbs.main.begin() as conn:
        sid = system_admin.add_system(conn, ctx.settings, name, "selectronic", site, owner, timezone=tz,
                                      credentials=CREDS)
        if capacity_kwh is not None:
            conn.execute(update(assets).where(assets.c.id == sid).values(
                attributes={"battery_capacity_kwh": capacity_kwh}))
    return sid


def series(ctx, system_id: int) -> dict[str, int]:
    with ctx.dbs.main_reader.connect() as conn:
        return {p["key"]: p["id"] for p in systems_repo.system_points(conn, system_id)}


def ingest(ctx, series_id: int, ts, values) -> None:
    ts = np.asarray(ts, np.int64)
    batch = ReadingBatch(np.full(len(ts), series_id, np.int64), ts, np.asarray(values, np.float64),
                         np.full(len(ts), -1, np.int64), [], "test")
    ctx.pipeline.ingest(batch, now=int(ts.max()))


def day_rows(ctx, series_ids, period: str = "day") -> dict[tuple, tuple]:
    """Stored aggregates of the series: (series, start) -> rounded figures."""
    a = aggregates.c
    with ctx.dbs.telemetry.connect() as conn:
        rows = conn.execute(select(a.series_id, a.bucket_start, a.bucket_end, a.energy_milli_wh, a.value_min,
                                   a.value_max, a.value_sum, a.value_count, a.ledger_count)
                            .where(a.period == period, a.series_id.in_(list(series_ids)))).all()
    r9 = lambda v: None if v is None else round(float(v), 6)  # noqa: E731
    return {(r[0], r[1]): (r[2], r[3], r9(r[4]), r9(r[5]), r9(r[6]), r[7], r[8]) for r in rows}

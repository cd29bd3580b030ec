"""Seed 000's 31-day rolling window: recent 15-minute points per plant for charts."""

from __future__ import annotations

from sqlalchemy import Connection

WINDOW_S = 31 * 86400


def refresh(conn: Connection, plant_ids: list[int], now: int) -> None:
    """Copy the plants' last 31 days of points from the readings, drop older ones."""
    if not plant_ids:
        return
    ids = ", ".join(str(int(p)) for p in plant_ids)
    since = int(now) - WINDOW_S
    conn.exec_driver_sql(f"DELETE FROM telemetry_15m_recent WHERE plant_id IN ({ids})")
    conn.exec_driver_sql(f"""
        INSERT INTO telemetry_15m_recent (plant_id, ts, total_energy_mwh, power_kw)
        SELECT s.asset_id, r.ts,
               MAX(CASE WHEN s.point_key = 'energy_total' THEN r.value / 1000.0 END),
               MAX(CASE WHEN s.point_key = 'power' THEN r.value END)
        FROM series_info s JOIN readings r ON r.series_id = s.series_id
        WHERE s.asset_id IN ({ids}) AND s.point_key IN ('energy_total', 'power') AND r.ts >= {since}
        GROUP BY s.asset_id, r.ts
    """)


def expire(conn: Connection, now: int) -> int:
    """Delete window rows older than 31 days (raw readings stay); returns rows deleted."""
    return conn.exec_driver_sql(
        f"DELETE FROM telemetry_15m_recent WHERE ts < {int(now) - WINDOW_S}").rowcount or 0

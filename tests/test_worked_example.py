"""Seed 000's worked example, reproduced exactly (plant 123, work order 456)."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
from sqlalchemy import select

from wattline.domain.metrics import MetricType
from wattline.domain.readings import ReadingBatch
from wattline.pipeline import rollup
from wattline.store import registry
from wattline.store.tables import plant_aggregates, work_order_aggregates


def _t(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp())


START, NOW = _t("2024-01-01T00:00:00"), _t("2025-11-22T12:00:00")

# plant id -> (vendor id, cumulative MWh at 2025-01-01, 2025-11-01, 2025-11-22, now, power kW)
PLANTS = {
    123: ("64786338", 45.000, 49.500, 50.000, 50.125, 2.5),
    124: ("64786339", 46.700, 51.350, 51.870, 52.000, 2.6),
    125: ("64786340", 43.500, 47.900, 48.380, 48.500, 2.4),
}


def _history(anchors_mwh):
    """15-minute cumulative kWh, piecewise linear through the seed's anchor values."""
    ts = np.arange(START, NOW + 1, 900, dtype=np.int64)
    knots = [START, _t("2025-01-01T00:00:00"), _t("2025-11-01T00:00:00"), _t("2025-11-22T00:00:00"), NOW]
    kwh = np.interp(ts, knots, [0.0] + [a * 1000 for a in anchors_mwh])
    return ts, kwh


def test_seed_000_plant_and_work_order_aggregates(dbs, pipeline):
    with dbs.main.begin() as conn:
        series = {}
        for pid, (vid, *_rest) in PLANTS.items():
            registry.add_asset(conn, f"plant {pid}", "plant", "UTC", asset_id=pid, vendor_type="solarman",
                               vendor_plant_id=vid, start_operating_time=START)
            series[pid] = registry.ensure_points(conn, pid, [
                registry.PointDefinition("energy_total", MetricType.COUNTER),
                registry.PointDefinition("power", MetricType.POWER),
            ])
        registry.add_group(conn, "WO 456", "work_order", list(PLANTS), group_id=456)

    for pid, (_vid, y, m, d, total, power) in PLANTS.items():
        ts, kwh = _history((y, m, d, total))
        kw = np.full(len(ts), 1.0)
        kw[-1] = power
        n = len(ts)
        # ingest in weekly chunks, as a backfill would
        for a in range(0, n, 672):
            b = slice(a, a + 672)
            pipeline.ingest(ReadingBatch(
                np.r_[np.full(len(ts[b]), series[pid]["energy_total"]), np.full(len(ts[b]), series[pid]["power"])],
                np.r_[ts[b], ts[b]], np.r_[kwh[b], kw[b]], np.full(2 * len(ts[b]), -1), [], "test",
            ), refresh_summaries=False)

    with dbs.telemetry.begin() as conn:
        rollup.refresh_summaries(conn, dbs.main_reader, set(PLANTS), now=NOW)
        p123 = conn.execute(select(plant_aggregates).where(plant_aggregates.c.plant_id == 123)).mappings().one()
        wo = conn.execute(select(work_order_aggregates).where(
            work_order_aggregates.c.work_order_id == 456)).mappings().one()

    assert (p123["daily_energy_kwh"], p123["monthly_energy_mwh"], p123["yearly_energy_mwh"],
            p123["total_energy_mwh"], p123["current_power_kw"]) == (125.0, 0.625, 5.125, 50.125, 2.5)
    assert p123["vendor_plant_id"] == "64786338"
    assert p123["last_update_time"].replace(tzinfo=timezone.utc) == datetime(2025, 11, 22, 12, tzinfo=timezone.utc)
    assert (float(wo["daily_energy_kwh"]), float(wo["monthly_energy_mwh"]), float(wo["yearly_energy_mwh"]),
            float(wo["total_energy_mwh"]), float(wo["current_power_kw"])) == (375.0, 1.875, 15.425, 150.625, 7.5)

    # the work order's own periods (its organization's zone, UTC here, as its members'):
    # today's bar is the summary's day, the 31 bars end today
    bars = rollup.group_daily_bars(dbs.telemetry, dbs.main_reader, 456, 31, now=NOW)
    assert len(bars) == 31 and bars[-1]["date"] == "2025-11-22"
    assert bars[-1]["energy_kwh"] == float(wo["daily_energy_kwh"]) == 375.0
    months = rollup.group_energy_periods(dbs.telemetry, dbs.main_reader, 456, "month", 1, now=NOW)
    years = rollup.group_energy_periods(dbs.telemetry, dbs.main_reader, 456, "year", 1, now=NOW)
    assert round(months[0]["energy_kwh"] / 1000, 3) == float(wo["monthly_energy_mwh"])
    assert round(years[0]["energy_kwh"] / 1000, 3) == float(wo["yearly_energy_mwh"])

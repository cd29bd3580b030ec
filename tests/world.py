"""A small world for integration tests: databases + emulated vendor clouds + plants."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

import numpy as np

from wattline import provisioning
from wattline.config import Settings
from wattline.context import AppContext
from wattline.pipeline import Pipeline
from wattline.simulator.vendor_cloud.config import DEFAULT_CREDENTIALS, CloudConfig, PlantProfile
from wattline.simulator.vendor_cloud.history import plant_series
from wattline.store import registry

SECRET = base64.b64encode(b"k" * 32).decode()
# the emulated clouds' clock: they serve history up to this instant
CLOUD_NOW = 1763812800  # 2025-11-22T12:00:00Z


@dataclass(frozen=True)
class WorldPlant:
    plant_id: int
    vendor: str
    vendor_plant_id: str
    timezone: str
    start: int


def make_ctx(dbs, tmp_path) -> AppContext:
    settings = Settings(data_dir=tmp_path / "data", secret_key=SECRET,
                        main_url=dbs.main.url.render_as_string(hide_password=False),
                        telemetry_url=dbs.telemetry.url.render_as_string(hide_password=False))
    return AppContext(settings, dbs, Pipeline(dbs.telemetry, dbs.main_reader))


def env_for(ctx: AppContext) -> dict:
    """Environment for a ``wattline`` subprocess on the same databases."""
    return {
        **os.environ, "WATTLINE_SECRET_KEY": SECRET, "WATTLINE_DATA_DIR": str(ctx.settings.data_dir),
        "WATTLINE_MAIN_URL": ctx.dbs.main.url.render_as_string(hide_password=False),
        "WATTLINE_TELEMETRY_URL": ctx.dbs.telemetry.url.render_as_string(hide_password=False),
    }


def cloud_config(plants: list[WorldPlant], **kw) -> CloudConfig:
    cfg = CloudConfig(clock=lambda: CLOUD_NOW, **kw)
    for p in plants:
        getattr(cfg, p.vendor).plants[p.vendor_plant_id] = PlantProfile(
            start_operating_ts=p.start, capacity_kw=250.0, timezone=p.timezone, latitude=45.0, longitude=7.0)
    return cfg


def set_up(ctx: AppContext, base_url: str, plants: list[WorldPlant], work_order: int | None = None) -> None:
    with ctx.dbs.main.begin() as conn:
        accounts = {}
        for vendor in sorted({p.vendor for p in plants}):
            accounts[vendor] = provisioning.add_vendor_account(
                conn, ctx.settings, vendor, f"{vendor} test", DEFAULT_CREDENTIALS[vendor], base_url=base_url,
                rate_limits=provisioning.UNLIMITED)
        for p in plants:
            provisioning.add_vendor_plant(conn, f"plant {p.plant_id}", p.vendor, p.vendor_plant_id, p.timezone,
                                       asset_id=p.plant_id, start_operating_time=p.start,
                                       vendor_account_id=accounts[p.vendor])
        if work_order is not None:
            registry.add_group(conn, f"WO {work_order}", "work_order", [p.plant_id for p in plants],
                               group_id=work_order)


def expected(cfg: CloudConfig, p: WorldPlant):
    profile = getattr(cfg, p.vendor).plants[p.vendor_plant_id]
    return plant_series(p.vendor_plant_id, profile, p.start, CLOUD_NOW + 1, now_ts=CLOUD_NOW)


def stored(ctx: AppContext, plant_id: int, key: str) -> tuple[np.ndarray, np.ndarray]:
    with ctx.dbs.main_reader.connect() as conn:
        sid = registry.point(conn, plant_id, key)["id"]
    with ctx.dbs.telemetry.connect() as conn:
        rows = conn.exec_driver_sql(f"SELECT ts, value FROM readings WHERE series_id = {sid} ORDER BY ts").all()
    return np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], float)


def snapshot(ctx: AppContext) -> dict:
    """Everything derived, for comparing two runs (without wall-clock columns)."""
    out = {}
    with ctx.dbs.telemetry.connect() as conn:
        for name, sql in {
            "readings": "SELECT series_id, ts, value, raw_event_id FROM readings ORDER BY 1, 2",
            "ledger": "SELECT series_id, end_ts, start_ts, delta_milli_wh, flags FROM ledger ORDER BY 1, 2",
            "aggregates": "SELECT series_id, period, bucket_start, energy_milli_wh, value_count, flags "
                          "FROM aggregates ORDER BY 1, 2, 3",
            "raw": "SELECT id, payload FROM raw_events ORDER BY 1",
            "plants": "SELECT plant_id, daily_energy_kwh, monthly_energy_mwh, yearly_energy_mwh, "
                      "total_energy_mwh, current_power_kw FROM plant_aggregates ORDER BY 1",
        }.items():
            out[name] = [tuple(float(v) if hasattr(v, "as_tuple") else v for v in r) for r in conn.exec_driver_sql(sql)]
    return out

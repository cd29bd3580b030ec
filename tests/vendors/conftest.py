"""Shared fixtures: emulated clouds on a free loopback port, expected histories, a fake clock.

Test modules get the constants and helpers below through the ``kit`` fixture (this
folder has no ``__init__.py``, so importing from ``conftest`` would be fragile).
"""

from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace
from typing import Callable, Iterator

import pytest
from helpers import shared_dir

from wattline.simulator.vendor_cloud import (
    DEFAULT_CREDENTIALS,
    BackgroundCloud,
    CloudConfig,
    PlantProfile,
    plant_series,
)

# "now" of every emulated cloud in these tests: 2024-11-01T00:00:00Z, so Sydney's DST
# end (2024-04-07) and start (2024-10-06) both lie in the past
NOW = 1730419200
START = 1704067200  # 2024-01-01T00:00:00Z
DAY = 86400
FAST_WAITS = (0.0, 0.01, 0.01, 0.01)

SOLARMAN_PLANT = "64786338"  # the seed's station id
SOLARMAN_TZ = "Asia/Kolkata"
SUNGROW_PLANT = "1129147"  # the captured ps_id
SUNGROW_TZ = "Australia/Sydney"

PROFILES = {
    ("solarman", SOLARMAN_PLANT): PlantProfile(
        start_operating_ts=START, capacity_kw=2000.0, latitude=12.97, longitude=77.59,
        timezone=SOLARMAN_TZ, name="Seed plant", initial_energy_kwh=50000.5,
    ),
    ("sungrow", SUNGROW_PLANT): PlantProfile(
        start_operating_ts=START, capacity_kw=10.0, latitude=-33.87, longitude=151.21,
        timezone=SUNGROW_TZ, name="MickMake",
    ),
}

SHARED = shared_dir()
SUNGROW_FIXTURES = SHARED / "vendor-fixtures" / "sungrow-isolarcloud"


def run(coro):
    return asyncio.run(coro)


def make_config(**overrides) -> CloudConfig:
    """The test cloud: fixed "now", the two plants above, no faults unless asked."""
    overrides.setdefault("clock", lambda: NOW)
    config = CloudConfig(**overrides)
    for (vendor, plant_id), profile in PROFILES.items():
        getattr(config, vendor).plants[plant_id] = profile
    return config


@pytest.fixture(scope="module")
def cloud() -> Iterator[BackgroundCloud]:
    """A fault-free cloud shared by a module's tests (reset the stats before counting)."""
    with BackgroundCloud(make_config()) as running:
        yield running


@pytest.fixture
def start_cloud() -> Iterator[Callable[..., BackgroundCloud]]:
    """Factory: ``start_cloud(fault_rate=0.2, ...)`` runs a cloud until the test ends."""
    started: list[BackgroundCloud] = []

    def _start(**overrides) -> BackgroundCloud:
        running = BackgroundCloud(make_config(**overrides)).start()
        started.append(running)
        return running

    yield _start
    for running in started:
        running.stop()


def credentials(vendor: str, **changes: str) -> dict:
    return {**DEFAULT_CREDENTIALS[vendor], **changes}


def expected_records(vendor: str, plant_id: str, start_ts: int, end_ts: int) -> dict[int, dict[str, float]]:
    """What the adapter must return: the emulator's history at the vendor's resolution."""
    series = plant_series(plant_id, PROFILES[(vendor, plant_id)], start_ts, end_ts, NOW)
    out: dict[int, dict[str, float]] = {}
    for ts, p, total, today in zip(
        series.ts.tolist(), series.power_kw.tolist(), series.energy_total_kwh.tolist(), series.energy_today_kwh.tolist()
    ):
        if vendor == "solarman":  # kWh at 1 Wh, power in W at 0.1 W
            values = {
                "energy_total": float("%.3f" % total),
                "power": float("%.1f" % (p * 1000.0)) * 1e-3,
                "energy_today": float("%.3f" % today),
            }
        else:  # Sungrow: integer Wh and W
            values = {
                "energy_total": float(round(total * 1000)) * 1e-3,
                "power": float(round(p * 1000)) * 1e-3,
                "energy_today": float(round(today * 1000)) * 1e-3,
            }
        out[ts] = values
    return out


class FakeClock:
    """Simulated time for limiters and adapters: ``sleep`` advances the clock at once."""

    def __init__(self, t: float) -> None:
        self.t = float(t)
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """This module's constants and helpers (``kit.NOW``, ``kit.run(...)``, ...)."""
    module = sys.modules[__name__]
    return SimpleNamespace(**{k: getattr(module, k) for k in dir(module) if k.isidentifier() and not k.startswith("_")})

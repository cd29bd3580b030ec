"""Configuration of the emulated vendor clouds, with documented defaults.

Default credentials (accepted unless ``CloudConfig`` says otherwise; emulator only):

=========  ==============================================================================
Solarman   ``app_id="3024060312"``, ``app_secret="wattline-demo-secret"``,
           ``email="demo@wattline.local"``, ``password="wattline-demo"``
Sungrow    ``appkey="WATTLINE-DEMO-APPKEY"``, ``username="demo@wattline.local"``,
           ``password="wattline-demo"``
=========  ==============================================================================

Plants: any plant id listed in ``VendorSettings.plants`` uses that profile. An id not
listed gets a **deterministic default profile** (``unknown_plants="default"``): start
2024-01-01T00:00:00Z, timezone UTC, latitude 51.48 / longitude 0.0 (Greenwich, so
solar noon is near 12:00 UTC) and a capacity of 50-1000 kW derived from the id, so a
demo can use any id (e.g. the seed's 64786338). Set ``unknown_plants="error"`` to get
the vendor's "plant not found" error instead.

Faults: each vendor call, with probability ``fault_rate``, gets one fault drawn
uniformly from ``fault_kinds`` using a ``random.Random(seed)``:

* ``"429"``: HTTP 429 with ``Retry-After: retry_after_s``
* ``"500"`` / ``"503"``: server errors
* ``"slow"``: the answer is held ``slow_delay_s`` (past a client's timeout), then sent
* ``"malformed"``: a good page in which 1-3 records are corrupted (a field missing,
  a non-numeric string, or null); on non-data calls this fault does nothing

``scripted_faults`` are used first, one per call, in order (deterministic tests).

History: ``history_source="auto"`` serves the simulator's PV model
(``wattline.simulator.plant.plant_history``) when it is importable, else a fast
deterministic clear-sky curve; ``"simulator"`` / ``"clear_sky"`` force one. The
simulator's model costs ~0.15 s of CPU the first time a plant is touched (it
integrates the plant's whole life); ``warm_plants`` does that for the configured plants
when the app is created, so first calls do not stall.
``latency_ms`` is added to every answer (an ``asyncio.sleep``: a held answer never
blocks the other calls); the environment variable ``WATTLINE_EMULATOR_LATENCY_MS``
sets it for ``wattline vendors serve`` and any ``CloudConfig()`` built without one.
``rate_limit_per_minute`` makes the cloud itself answer 429 beyond that many calls per
account per minute.

``bench_mode`` (or ``WATTLINE_EMULATOR_BENCH=1``) is for load benchmarks only: every
vendor's quotas and plan limits are lifted (Enphase 10/min and 1,000/month, Amber
50 per 5 min, SolarEdge 300/day and 3 concurrent, the cloud's own per-minute limit),
Selectronic's minute-48-52 outage is off, and Enphase and Amber serve any system or
site id (a default profile) as the other vendors already do.
"""

from __future__ import annotations

from wattline import clock as wall_clock

import os
import zlib
from dataclasses import dataclass, field
from typing import Callable, Literal

from wattline.config import EMULATOR_HOST as DEFAULT_HOST, EMULATOR_PORT as DEFAULT_PORT  # noqa: E402, F401 (re-exported)
DEFAULT_START_TS = 1704067200  # 2024-01-01T00:00:00Z

FAULT_KINDS: tuple[str, ...] = ("429", "500", "503", "slow", "malformed")

DEFAULT_CREDENTIALS: dict[str, dict[str, str]] = {
    "solarman": {
        "app_id": "3024060312",
        "app_secret": "wattline-demo-secret",
        "email": "demo@wattline.local",
        "password": "wattline-demo",
    },
    "sungrow": {
        "appkey": "WATTLINE-DEMO-APPKEY",
        "username": "demo@wattline.local",
        "password": "wattline-demo",
    },
}


@dataclass(frozen=True)
class PlantProfile:
    """What the emulated cloud knows about one plant.

    ``start_operating_ts`` UTC epoch s; ``capacity_kw`` peak AC kW; ``timezone`` IANA
    (Sungrow speaks this local time); ``seed`` varies the weather (default: from the id);
    ``initial_energy_kwh`` is the total-energy counter at the start.
    """

    start_operating_ts: int = DEFAULT_START_TS
    capacity_kw: float = 100.0
    latitude: float = 51.48
    longitude: float = 0.0
    timezone: str = "UTC"
    name: str = ""
    seed: int | None = None
    initial_energy_kwh: float = 0.0


def plant_seed(plant_id: str) -> int:
    """A stable seed from a plant id (crc32, identical across processes)."""
    return zlib.crc32(str(plant_id).encode())


def default_profile(plant_id: str) -> PlantProfile:
    """The deterministic profile of a plant id nobody configured."""
    seed = plant_seed(plant_id)
    return PlantProfile(capacity_kw=50.0 * (1 + seed % 20), name=f"Plant {plant_id}", seed=seed)


def _default_settings(vendor: str) -> "VendorSettings":
    return VendorSettings(credentials=[dict(DEFAULT_CREDENTIALS[vendor])])


@dataclass
class VendorSettings:
    """Accepted credentials and plants of one emulated vendor (ids are strings)."""

    credentials: list[dict[str, str]] = field(default_factory=list)
    plants: dict[str, PlantProfile] = field(default_factory=dict)
    max_range_s: int = 7 * 86400  # longest history range per call
    max_page_size: int = 500  # Solarman history ``size`` / Sungrow getPsList ``size``


LATENCY_ENV = "WATTLINE_EMULATOR_LATENCY_MS"
BENCH_ENV = "WATTLINE_EMULATOR_BENCH"


def env_latency_ms() -> float:
    """``WATTLINE_EMULATOR_LATENCY_MS`` (ms, default 0)."""
    raw = os.environ.get(LATENCY_ENV, "").strip()
    try:
        value = float(raw) if raw else 0.0
    except ValueError:
        raise ValueError(f"{LATENCY_ENV} must be a number of milliseconds, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{LATENCY_ENV} must be >= 0, got {raw!r}")
    return value


def env_bench_mode() -> bool:
    """``WATTLINE_EMULATOR_BENCH`` set to 1/true/yes."""
    return os.environ.get(BENCH_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class CloudConfig:
    """Everything the emulated clouds can be told; see the module docstring."""

    solarman: VendorSettings = field(default_factory=lambda: _default_settings("solarman"))
    sungrow: VendorSettings = field(default_factory=lambda: _default_settings("sungrow"))
    unknown_plants: Literal["default", "error"] = "default"
    token_ttl_s: float = 3600.0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    scripted_faults: list[str | None] = field(default_factory=list)
    seed: int = 0
    retry_after_s: int = 2
    slow_delay_s: float = 15.0
    latency_ms: float = field(default_factory=lambda: env_latency_ms())
    bench_mode: bool = field(default_factory=lambda: env_bench_mode())
    rate_limit_per_minute: int | None = None
    history_source: Literal["auto", "simulator", "clear_sky"] = "auto"
    warm_plants: bool = True
    clock: Callable[[], float] = wall_clock.now

    def __post_init__(self) -> None:
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault_rate must be within 0..1")
        unknown = set(self.fault_kinds) - set(FAULT_KINDS)
        unknown |= {f for f in self.scripted_faults if f is not None} - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        if self.unknown_plants not in ("default", "error"):
            raise ValueError("unknown_plants must be 'default' or 'error'")
        if self.history_source not in ("auto", "simulator", "clear_sky"):
            raise ValueError("history_source must be 'auto', 'simulator' or 'clear_sky'")

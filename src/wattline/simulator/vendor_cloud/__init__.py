"""Emulated vendor clouds (Solarman, Sungrow iSolarCloud) served on loopback.

Adapters are tested against these over real HTTP: the same paths, envelopes, units,
pagination, range limits, auth and token expiry as the real APIs (see
``vendor-fixtures/``), plus configurable faults (429 + Retry-After, 5xx, slow
answers, malformed records). Defaults (credentials, plants, faults) are documented in
:mod:`.config`.
"""

from .app import create_app
from .config import (
    DEFAULT_CREDENTIALS,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_START_TS,
    CloudConfig,
    PlantProfile,
    VendorSettings,
    default_profile,
)
from .history import Series, plant_series
from .server import BackgroundCloud, serve
from .state import CallRecord, CloudState

__all__ = [
    "DEFAULT_CREDENTIALS",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_START_TS",
    "BackgroundCloud",
    "CallRecord",
    "CloudConfig",
    "CloudState",
    "PlantProfile",
    "Series",
    "VendorSettings",
    "create_app",
    "default_profile",
    "plant_series",
    "serve",
]

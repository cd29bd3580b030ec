"""Emulated vendor clouds (Solarman, Sungrow iSolarCloud) served on loopback.

Adapters are tested against these over real HTTP: the same paths, envelopes, units,
pagination, range limits, auth and token expiry as the real APIs (see
``vendor-fixtures/``), plus configurable faults (429 + Retry-After, 5xx, slow
answers, malformed records). Defaults (credentials, plants, faults) are documented in
:mod:`.config`.
"""

# Exports are loaded on first use (PEP 562): importing one submodule (the CLI reads
# ``vendor_cloud.config`` for its defaults) must not load numpy/scipy models or every
# emulation, which costs seconds at every command's start.
import importlib

_EXPORTS = {
    "create_app": ".app",
    **{n: ".config" for n in ("DEFAULT_CREDENTIALS", "DEFAULT_HOST", "DEFAULT_PORT", "DEFAULT_START_TS",
                               "CloudConfig", "PlantProfile", "VendorSettings", "default_profile")},
    **{n: ".history" for n in ("Series", "plant_series")},
    **{n: ".server" for n in ("BackgroundCloud", "serve")},
    **{n: ".state" for n in ("CallRecord", "CloudState")},
}

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


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))

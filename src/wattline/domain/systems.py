"""Pure rules of monitored systems (seed 003): aliases, status, point transforms."""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Mapping, Sequence

STATUSES = ("active", "paused", "error")
SET_STATUSES = ("active", "paused")  # what a person sets; "error" comes from polling
FAILURES_TO_ERROR = 3  # consecutive failed polls that put a system in "error"
# as a JSON-schema pattern it documents the API fields that take an alias or slug; checked
# with fullmatch (match with "$" alone would let a trailing newline through)
ALIAS_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
ALIAS_RE = re.compile(ALIAS_PATTERN)
POLL_CAUSES = ("CRON", "USER", "ADMIN", "PUSH")

# seed 003 point_info defaults for the generic point keys vendors report
POINT_INFO_DEFAULTS: dict[str, tuple[str, str, str]] = {
    # key: (subsystem, type, label)
    "power": ("solar", "generation", "Solar power"),
    "energy_total": ("solar", "generation", "Solar energy (lifetime)"),
    "energy_today": ("solar", "generation", "Solar energy today"),
    "solar_w": ("solar", "generation", "Solar power"),
    "load_w": ("load", "consumption", "Load power"),
    "battery_w": ("battery", "storage", "Battery power"),
    "battery_soc": ("battery", "storage", "Battery state of charge"),
    "grid_w": ("grid", "exchange", "Grid power"),
    "grid_import_kwh": ("grid", "consumption", "Grid import"),
    "grid_export_kwh": ("grid", "generation", "Grid export"),
}


def alias_problem(alias: str) -> str | None:
    """Why ``alias`` cannot name a system in a URL, or None."""
    if not ALIAS_RE.fullmatch(alias or ""):
        return (f"alias {alias!r} must be 1-63 characters of a-z, 0-9, '-' or '_', starting with a letter "
                "or digit")
    return None


def alias_from_name(name: str) -> str:
    """A URL-safe alias from a display name ("Home PV #2" -> "home-pv-2")."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63].strip("-")
    return slug or "system"


def effective_status(set_status: str, consecutive_failures: int) -> str:
    """``paused`` if a person paused it; ``error`` after :data:`FAILURES_TO_ERROR`
    consecutive failed polls; else ``active`` (back on the next success)."""
    if set_status == "paused":
        return "paused"
    return "error" if consecutive_failures >= FAILURES_TO_ERROR else "active"


def default_point_info(key: str) -> tuple[str | None, str | None, str]:
    """(subsystem, type, label) for a point key without declared ones."""
    if key in POINT_INFO_DEFAULTS:
        return POINT_INFO_DEFAULTS[key]
    return None, None, key.replace("_", " ").capitalize()


def transform_problem(transform: Mapping) -> str | None:
    """Why a transform ({"scale": float, "offset": float, "sign": 1|-1}) is invalid, or None."""
    unknown = set(transform) - {"scale", "offset", "sign"}
    if unknown:
        return f"unknown transform keys {sorted(unknown)}: expected scale, offset, sign"
    for k in ("scale", "offset"):
        v = transform.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            return f"transform {k} must be a number"
    if transform.get("sign", 1) not in (1, -1):
        return "transform sign must be 1 or -1"
    return None


def apply_transform(value: float, transform: Mapping | None) -> float:
    """sign * (scale * value + offset); no transform = the value."""
    if not transform:
        return value
    return transform.get("sign", 1) * (transform.get("scale", 1.0) * value + transform.get("offset", 0.0))


def transform_at(versions: Sequence[tuple[int, Mapping]], ts: int) -> Mapping | None:
    """The version in force at ``ts`` (UTC epoch s) of versions sorted by effective_from."""
    i = bisect_right([v[0] for v in versions], ts)
    return versions[i - 1][1] if i else None

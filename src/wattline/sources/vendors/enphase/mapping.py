"""Enphase answers -> Wattline records.

**Cloud, Enlighten API v4** (what the adapter fetches). ``GET
/api/v4/systems/{id}/telemetry/production_micro`` answers ``{system_id, granularity,
total_devices, start_at, end_at, items: "intervals", intervals: [...], meta}``; each
interval is one record at its **end**:

=====================  ==============  ======  ===================================
vendor field           point           vendor  canonical
=====================  ==============  ======  ===================================
``end_at``             ``ts``          epoch   int epoch s (UTC)
``powr``               ``solar_w``     W       kW (/1000), mean over the interval
``enwh``               ``solar_kwh``   Wh      kWh (/1000), energy of the interval
=====================  ==============  ======  ===================================

No capture of the cloud API is in ``vendor-fixtures``: the shape is Enphase's v4
documentation's, as the emulation serves it.

**Local IQ Gateway (Envoy)** ``/production.json`` (the real captures in
``vendor-fixtures/enphase-envoy/``, for a site on the same network):
:func:`parse_envoy_production` reads ``production[]`` (the ``eim`` CT meter when it
is active, else the ``inverters`` estimate), ``consumption[]`` (``total-consumption``,
``net-consumption``) and ``storage[]``; ``wNow`` is W, ``whLifetime`` Wh,
``readingTime`` epoch s, and a ``readingTime`` of 0 means "no data" (left out, not 0).
"""

from __future__ import annotations

from typing import Any

from wattline.domain.metrics import MetricType

from ..errors import VendorUnavailable
from ..models import RejectedRecord, VendorPlant, VendorPointSpec, VendorRecord
from ..parsing import BadValue, to_number

SOLAR_W = "solar_w"
SOLAR_KWH = "solar_kwh"
SOLAR_TOTAL_KWH = "solar_total_kwh"
LOAD_W = "load_w"
GRID_W = "grid_w"

POINTS = [
    VendorPointSpec(SOLAR_W, MetricType.POWER, "intervals[].powr", "W"),
    VendorPointSpec(SOLAR_KWH, MetricType.INTERVAL_ENERGY, "intervals[].enwh", "Wh"),
]

# what the local gateway reports (not polled by the cloud adapter)
LOCAL_POINTS = [
    VendorPointSpec(SOLAR_W, MetricType.POWER, "production[].wNow", "W"),
    VendorPointSpec(SOLAR_TOTAL_KWH, MetricType.COUNTER, "production[].whLifetime", "Wh"),
    VendorPointSpec(LOAD_W, MetricType.POWER, "consumption[total-consumption].wNow", "W"),
    VendorPointSpec(GRID_W, MetricType.POWER, "consumption[net-consumption].wNow", "W"),
]

_W = POINTS[0].factor
_WH = POINTS[1].factor


def parse_interval(item: Any) -> VendorRecord:
    """One ``intervals`` entry; raises BadValue naming the bad field."""
    if not isinstance(item, dict):
        raise BadValue(f"interval is a {type(item).__name__}, not an object")
    for name in ("end_at", "powr", "enwh"):
        if name not in item:
            raise BadValue(f"{name} is missing")
    ts = to_number(item["end_at"], "end_at")
    if ts < 0 or ts != int(ts):
        raise BadValue(f"end_at is not whole epoch seconds: {item['end_at']!r}")
    enwh = to_number(item["enwh"], "enwh")
    if enwh < 0:
        raise BadValue(f"enwh is negative: {item['enwh']!r}")
    return VendorRecord(ts=int(ts), values={SOLAR_W: to_number(item["powr"], "powr") * _W, SOLAR_KWH: enwh * _WH},
                        raw=item)


def count_intervals(payload: Any) -> int:
    """Validate a telemetry answer's shape (inside the retried attempt) and count it."""
    items = payload.get("intervals") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise VendorUnavailable("telemetry answer without an intervals list")
    return len(items)


def parse_production_micro(payload: Any) -> tuple[list[VendorRecord], list[RejectedRecord]]:
    """Records of a production_micro answer, and the intervals rejected (with why)."""
    count_intervals(payload)
    records, rejected = [], []
    for item in payload["intervals"]:
        try:
            records.append(parse_interval(item))
        except BadValue as exc:
            rejected.append(RejectedRecord(item, str(exc)))
    return records, rejected


def system_to_plant(item: dict) -> VendorPlant:
    """A ``GET /api/v4/systems`` entry (``system_size`` W, ``operational_at`` epoch s)."""
    def opt(name: str) -> float | None:
        try:
            return to_number(item.get(name), name)
        except BadValue:
            return None

    size, since = opt("system_size"), opt("operational_at")
    return VendorPlant(vendor_plant_id=str(item.get("system_id")), name=str(item.get("name") or ""),
                       capacity_kw=size / 1000.0 if size is not None else None,
                       timezone=item.get("timezone") or None,
                       start_operating_ts=int(since) if since is not None else None, raw=item)


# -- the local gateway's production.json ---------------------------------------------------


def _reading(block: dict, where: str) -> tuple[int, float, float | None] | None:
    """(readingTime, wNow W, whLifetime Wh or None) of a block; None when it has no data."""
    t = to_number(block.get("readingTime"), f"{where}.readingTime")
    if t <= 0 or not block.get("activeCount"):
        return None  # readingTime 0 / no active device: the gateway has nothing
    w = to_number(block.get("wNow"), f"{where}.wNow")
    wh = to_number(block["whLifetime"], f"{where}.whLifetime") if "whLifetime" in block else None
    return int(t), w, wh


def parse_envoy_production(payload: Any) -> VendorRecord:
    """The gateway's ``/production.json`` as one record at the production reading's time.

    Production prefers the CT meter (``eim``, measurementType ``production``) over the
    microinverters' own report (``inverters``, updated every ~15 min). Consumption and
    net grid power (+ import, − export) exist only with consumption CTs.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("production"), list):
        raise BadValue("production.json without a production list")
    by_kind: dict[str, tuple[int, float, float | None]] = {}
    for i, block in enumerate(payload["production"]):
        if isinstance(block, dict):
            got = _reading(block, f"production[{i}]")
            if got is not None:
                by_kind[str(block.get("type"))] = got
    source = by_kind.get("eim") or by_kind.get("inverters")
    if source is None:
        raise BadValue("no production block has data (readingTime 0)")
    ts, w, wh = source
    values = {SOLAR_W: w * _W}
    if wh is not None:
        values[SOLAR_TOTAL_KWH] = wh * _WH
    for i, block in enumerate(payload.get("consumption") or []):
        if not isinstance(block, dict):
            continue
        got = _reading(block, f"consumption[{i}]")
        key = {"total-consumption": LOAD_W, "net-consumption": GRID_W}.get(str(block.get("measurementType")))
        if got is not None and key is not None:
            values[key] = got[1] * _W
    return VendorRecord(ts=ts, values=values, raw=payload)

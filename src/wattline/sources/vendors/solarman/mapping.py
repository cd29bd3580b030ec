"""Solarman station records -> Wattline records (seed 000, "Solarman Mapping").

==============================  ===============  =========  ===============
vendor field                    point            vendor     canonical
==============================  ===============  =========  ===============
``lastUpdateTime``              ``ts``           unix s     int epoch s
``generationUploadTotalOffset`` ``energy_total`` kWh        kWh
``generationPower``             ``power``        W          kW (/1000)
``generationValue``             ``energy_today`` kWh        kWh
whole record                    ``raw``
==============================  ===============  =========  ===============
"""

from __future__ import annotations

from typing import Any

from wattline.domain.metrics import MetricType

from ..errors import VendorUnavailable
from ..models import ENERGY_TODAY, ENERGY_TOTAL, POWER, VendorPlant, VendorPointSpec, VendorRecord
from ..parsing import BadValue, to_number

TIME_FIELD = "lastUpdateTime"

POINTS = [
    VendorPointSpec(ENERGY_TOTAL, MetricType.COUNTER, "generationUploadTotalOffset", "kWh"),
    VendorPointSpec(POWER, MetricType.POWER, "generationPower", "W"),
    VendorPointSpec(ENERGY_TODAY, MetricType.COUNTER, "generationValue", "kWh", daily_reset=True),
]

_MAPPING = [(p.key, p.vendor_field, p.factor) for p in POINTS]


def parse_station_item(item: Any) -> VendorRecord:
    """One ``stationDataItems`` entry as a record; raises BadValue naming the bad field."""
    if not isinstance(item, dict):
        raise BadValue(f"record is a {type(item).__name__}, not an object")
    for field in (TIME_FIELD, *(p.vendor_field for p in POINTS)):
        if field not in item:
            raise BadValue(f"{field} is missing")
    ts = to_number(item[TIME_FIELD], TIME_FIELD)
    if ts < 0:
        raise BadValue(f"{TIME_FIELD} is negative: {item[TIME_FIELD]!r}")
    values = {key: to_number(item[field], field) * factor for key, field, factor in _MAPPING}
    return VendorRecord(ts=int(ts), values=values, raw=item)


def count_items(payload: Any) -> int:
    """Validate a history page's shape (inside the retried attempt) and count its items."""
    items = payload.get("stationDataItems") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise VendorUnavailable("history page without a stationDataItems list")
    return len(items)


def count_stations(payload: Any) -> int:
    items = payload.get("stationList") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise VendorUnavailable("station list page without a stationList list")
    return len(items)


def _opt_number(item: dict, field: str) -> float | None:
    try:
        return to_number(item.get(field), field)
    except BadValue:
        return None


def station_to_plant(item: dict) -> VendorPlant:
    start = _opt_number(item, "startOperatingTime")
    return VendorPlant(
        vendor_plant_id=str(item.get("id")),
        name=str(item.get("name") or ""),
        capacity_kw=_opt_number(item, "installedCapacity"),
        timezone=item.get("regionTimezone") or None,
        latitude=_opt_number(item, "locationLat"),
        longitude=_opt_number(item, "locationLng"),
        start_operating_ts=int(start) if start is not None else None,
        raw=item,
    )

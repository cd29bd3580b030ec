"""Amber Electric answers -> Wattline records (``vendor-fixtures/amber-electric/``).

Usage (``GET /sites/{id}/usage``), one record per 30-minute interval, at its **end**
(``endTime``; interval energy is "the energy of the interval ending at ts"):

======================  ===================  =======================  ==========
vendor field            point                vendor unit              canonical
======================  ===================  =======================  ==========
general ``kwh``         ``grid_import_kwh``  kWh                      kWh
feedIn ``kwh``          ``grid_export_kwh``  kWh (negative = export)  kWh, >= 0
``quality``             ``usage_estimated``  billable | estimated      1 / 0
======================  ===================  =======================  ==========

``usage_estimated`` is the quality flag: 1 while Amber still estimates the interval,
0 once it is billable (a later fetch of the same interval replaces the estimate).
``cost`` (cents incl. GST) and the interval's ``perKwh`` stay in the raw record.

Prices (``/prices`` and ``/prices/current``), one record per interval, at its
**start** (the boundary: ``startTime`` is one second after it, so the start is taken
as ``endTime - duration``):

======================  ======================  =========  ==============================
vendor field            point                   unit       note
======================  ======================  =========  ==============================
general ``perKwh``      ``price_general_c_kwh``  c/kWh     incl. GST; negative is kept
feedIn ``perKwh``       ``price_feedin_c_kwh``   c/kWh     negative = Amber pays you
``spotPerKwh``          ``price_spot_c_kwh``     c/kWh     wholesale, may be negative
``spikeStatus``         ``price_spike``          0/1/2     none / potential / spike
======================  ======================  =========  ==============================

Channels are grouped by ``channelType`` (the spec warns that array positions shift
when a channel is added); ``controlledLoad`` is kept in the raw payload only. A record
that cannot be read (a field missing, a non-number, an unknown quality or channel,
times that do not match the duration) is rejected with the reason, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from wattline.domain.metrics import MetricType

from ..errors import VendorUnavailable
from ..models import RejectedRecord, VendorPlant, VendorPointSpec, VendorRecord
from ..parsing import BadValue, to_number

GRID_IMPORT_KWH = "grid_import_kwh"
GRID_EXPORT_KWH = "grid_export_kwh"
USAGE_ESTIMATED = "usage_estimated"
PRICE_GENERAL = "price_general_c_kwh"
PRICE_FEEDIN = "price_feedin_c_kwh"
PRICE_SPOT = "price_spot_c_kwh"
PRICE_SPIKE = "price_spike"

POINTS = [
    VendorPointSpec(GRID_IMPORT_KWH, MetricType.INTERVAL_ENERGY, "usage[general].kwh", "kWh"),
    VendorPointSpec(GRID_EXPORT_KWH, MetricType.INTERVAL_ENERGY, "usage[feedIn].kwh", "kWh"),
    VendorPointSpec(USAGE_ESTIMATED, MetricType.STATE, "usage.quality", ""),
    VendorPointSpec(PRICE_GENERAL, MetricType.PRICE, "prices[general].perKwh", "c/kWh"),
    VendorPointSpec(PRICE_FEEDIN, MetricType.PRICE, "prices[feedIn].perKwh", "c/kWh"),
    VendorPointSpec(PRICE_SPOT, MetricType.PRICE, "prices[general].spotPerKwh", "c/kWh"),
    VendorPointSpec(PRICE_SPIKE, MetricType.STATE, "prices[general].spikeStatus", ""),
]

# NEM time: the market's clock, UTC+10 all year (no DST); query dates are NEM dates
NEM = timezone(timedelta(hours=10))
QUALITY = {"billable": 0.0, "estimated": 1.0}
SPIKE = {"none": 0.0, "potential": 1.0, "spike": 2.0}
CHANNELS = ("general", "controlledLoad", "feedIn")
PRICE_TYPES = ("ActualInterval", "CurrentInterval", "ForecastInterval")


@dataclass(frozen=True)
class PriceInterval:
    """One general-channel price: ``start_ts``/``end_ts`` UTC epoch s (the boundaries),
    ``c_per_kwh`` cents per kWh incl. GST (may be negative), ``estimate`` True while
    Amber may still revise it, ``raw`` the vendor's record."""

    start_ts: int
    end_ts: int
    c_per_kwh: float
    estimate: bool
    spike_status: str
    raw: dict


def _number(item: dict, field: str) -> float:
    if field not in item:
        raise BadValue(f"{field} is missing")
    return to_number(item[field], field)


def _instant(item: dict, field: str) -> int:
    value = item.get(field)
    if not isinstance(value, str):
        raise BadValue(f"{field} is missing" if value is None else f"{field} is not a time string")
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadValue(f"{field} is not ISO-8601: {value[:40]!r}") from None
    if dt.tzinfo is None:
        raise BadValue(f"{field} has no UTC offset: {value[:40]!r}")
    return int(dt.timestamp())


def _bounds(item: dict) -> tuple[int, int]:
    """(start boundary, end) of an interval; checks the times against ``duration``."""
    duration = _number(item, "duration")
    if duration not in (5.0, 30.0):
        raise BadValue(f"duration is {duration:g} minutes, expected 5 or 30")
    start, end = _instant(item, "startTime"), _instant(item, "endTime")
    boundary = end - int(duration) * 60
    if not boundary <= start <= boundary + 1:  # Amber's startTime is the boundary + 1 s
        raise BadValue(f"startTime and endTime are not {duration:g} minutes apart")
    return boundary, end


def _channel(item: dict) -> str:
    channel = item.get("channelType")
    if channel not in CHANNELS:
        raise BadValue(f"channelType is {channel!r}, expected one of {', '.join(CHANNELS)}")
    return channel


def _merge(out: dict[int, VendorRecord], rejected: list[RejectedRecord], ts: int, values: dict[str, float],
           item: dict) -> None:
    """Add a channel's values to the record at ``ts``; a second, different value for the
    same point (the same channel twice) is rejected, not overwritten."""
    rec = out.get(ts)
    if rec is None:
        out[ts] = VendorRecord(ts=ts, values=dict(values), raw={"intervals": [item]})
        return
    clash = [k for k, v in values.items() if k in rec.values and rec.values[k] != v and k != USAGE_ESTIMATED]
    if clash:
        rejected.append(RejectedRecord(item, f"second {item.get('channelType')} interval for {ts} disagrees"))
        return
    for key, value in values.items():
        # an interval is estimated if any of its channels still is
        rec.values[key] = max(rec.values.get(key, 0.0), value) if key == USAGE_ESTIMATED else value
    rec.raw["intervals"].append(item)


def parse_usage(items: Any) -> tuple[list[VendorRecord], list[RejectedRecord]]:
    """Usage intervals as records at their end (channels merged), and the rejected ones."""
    if not isinstance(items, list):
        raise VendorUnavailable("usage answer is not a JSON array")
    out: dict[int, VendorRecord] = {}
    rejected: list[RejectedRecord] = []
    for item in items:
        try:
            if not isinstance(item, dict):
                raise BadValue(f"interval is a {type(item).__name__}, not an object")
            channel = _channel(item)
            _start, end = _bounds(item)
            quality = item.get("quality")
            if quality not in QUALITY:
                raise BadValue(f"quality is {quality!r}, expected billable or estimated")
            kwh = _number(item, "kwh")
        except BadValue as exc:
            rejected.append(RejectedRecord(item, str(exc)))
            continue
        if channel == "controlledLoad":
            continue  # not a point of its own: kept in the raw answer
        if channel == "general":
            values = {GRID_IMPORT_KWH: kwh}
        else:  # feedIn: exported energy, negative in Amber's sign convention
            values = {GRID_EXPORT_KWH: abs(kwh)}
        values[USAGE_ESTIMATED] = QUALITY[quality]
        _merge(out, rejected, end, values, item)
    return sorted(out.values(), key=lambda r: r.ts), rejected


def _price_fields(item: dict) -> tuple[int, int, str, float, float, str]:
    if not isinstance(item, dict):
        raise BadValue(f"interval is a {type(item).__name__}, not an object")
    kind = item.get("type")
    if kind not in PRICE_TYPES:
        raise BadValue(f"type is {kind!r}, expected one of {', '.join(PRICE_TYPES)}")
    channel = _channel(item)
    start, end = _bounds(item)
    per_kwh = _number(item, "perKwh")
    spot = _number(item, "spotPerKwh")
    spike = item.get("spikeStatus", "none")
    if spike not in SPIKE:
        raise BadValue(f"spikeStatus is {spike!r}, expected none, potential or spike")
    return start, end, channel, per_kwh, spot, spike


def parse_prices(items: Any) -> tuple[list[VendorRecord], list[RejectedRecord]]:
    """Price intervals as records at their start (channels merged), and the rejected ones."""
    if not isinstance(items, list):
        raise VendorUnavailable("prices answer is not a JSON array")
    out: dict[int, VendorRecord] = {}
    rejected: list[RejectedRecord] = []
    for item in items:
        try:
            start, _end, channel, per_kwh, spot, spike = _price_fields(item)
        except BadValue as exc:
            rejected.append(RejectedRecord(item, str(exc)))
            continue
        if channel == "general":
            values = {PRICE_GENERAL: per_kwh, PRICE_SPOT: spot, PRICE_SPIKE: SPIKE[spike]}
        elif channel == "feedIn":
            values = {PRICE_FEEDIN: per_kwh}
        else:
            continue  # controlledLoad: raw only
        _merge(out, rejected, start, values, item)
    return sorted(out.values(), key=lambda r: r.ts), rejected


def general_price_intervals(items: Iterable[Any]) -> tuple[list[PriceInterval], list[RejectedRecord]]:
    """The general channel's prices, one per interval start (the source of cost versions).

    Other channels are skipped; unreadable records are rejected with the reason; a
    second record for the same start with another price is rejected too.
    """
    out: dict[int, PriceInterval] = {}
    rejected: list[RejectedRecord] = []
    for item in items:
        try:
            start, end, channel, per_kwh, _spot, spike = _price_fields(item)
        except BadValue as exc:
            rejected.append(RejectedRecord(item, str(exc)))
            continue
        if channel != "general":
            continue
        kept = out.get(start)
        if kept is not None and kept.c_per_kwh != per_kwh:
            rejected.append(RejectedRecord(item, f"second general price for {start} disagrees"))
            continue
        out[start] = PriceInterval(start, end, per_kwh, bool(item.get("estimate", False)), spike, item)
    return [out[k] for k in sorted(out)], rejected


def combine(*groups: list[VendorRecord]) -> list[VendorRecord]:
    """Usage and price records as one record per timestamp: a usage interval ends where
    the next price interval starts, and their point keys never overlap."""
    by_ts: dict[int, VendorRecord] = {}
    for rec in (r for g in groups for r in g):
        kept = by_ts.get(rec.ts)
        if kept is None:
            by_ts[rec.ts] = VendorRecord(rec.ts, dict(rec.values), {"intervals": list(rec.raw["intervals"])})
        else:
            kept.values.update(rec.values)
            kept.raw["intervals"].extend(rec.raw["intervals"])
    return [by_ts[t] for t in sorted(by_ts)]


def nem_date(ts: int) -> str:
    """``YYYY-MM-DD`` of the NEM day holding UTC epoch ``ts`` (Amber's query dates)."""
    return datetime.fromtimestamp(int(ts), NEM).strftime("%Y-%m-%d")


def nem_midnight(ts: int) -> int:
    """UTC epoch of the NEM midnight starting the day that holds ``ts``."""
    d = datetime.fromtimestamp(int(ts), NEM)
    return int(datetime(d.year, d.month, d.day, tzinfo=NEM).timestamp())


def count_intervals(payload: Any) -> int:
    """Validate an interval answer's shape (inside the retried attempt) and count it."""
    if not isinstance(payload, list):
        raise VendorUnavailable("answer is not a JSON array of intervals")
    return len(payload)


def site_to_plant(item: dict) -> VendorPlant:
    """A ``GET /sites`` entry. Amber sites are NEM connections: their clock is NEM time,
    but the display zone is the customer's (unknown here), so none is given."""
    return VendorPlant(vendor_plant_id=str(item.get("id")), name=str(item.get("nmi") or item.get("id") or ""),
                       raw=item)

"""SolarEdge Monitoring API answers -> Wattline records.

Every date is a **site-local naive** ``YYYY-MM-DD hh:mm:ss`` (no offset), converted with
the site's IANA zone (``details.location.timeZone``). A slot's date is its *start*; a
record is stamped at the slot's *end* (energy of the interval ending at ts, the
interval's mean power), so ``[00:00, 00:15)`` local is one record at 00:15.

DST (VENDOR-NOTES.md: the API keeps a 96-slot local grid):

* spring-forward: the missing hour's slots are present with no value; they are
  counted as empty, not records. One that did carry a value is rejected ("does not
  exist").
* fall-back: the repeated hour appears once, its energy seemingly the sum of both
  occurrences. Its energy is split evenly between the two real slots (an estimate:
  the day's total stays right) and its power is given to both.

=====================  ====================================  ======  ==============
vendor                 point                                 vendor  canonical
=====================  ====================================  ======  ==============
Production             ``solar_kwh`` / ``solar_w``           Wh / W  kWh / kW
Consumption            ``load_kwh`` / ``load_w``             Wh / W  kWh / kW
Purchased              ``grid_import_kwh``                   Wh      kWh
FeedIn                 ``grid_export_kwh``                   Wh      kWh
Purchased − FeedIn     ``grid_w`` (+ import)                 W       kW
SelfConsumption        ``self_consumption_kwh``              Wh      kWh
STORAGE (power flow)   ``battery_w`` (+ discharging),        unit    kW, %
                       ``battery_soc`` (chargeLevel)
overview lifeTimeData  ``solar_lifetime_kwh``                Wh      kWh
=====================  ====================================  ======  ==============

The energies are interval energies (15 minutes), units as each answer's ``unit``
says. ``"value": null`` or a missing ``value`` is no reading, never 0. A value that is
not a number rejects that one entry (meter, date) with the reason.
``currentPowerFlow`` carries its own ``unit`` (kW in real captures, W in others) and
unsigned powers: directions come from ``connections`` and the storage ``status``.
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from typing import Any

import httpx

from wattline.domain.metrics import MetricType, UnitError, to_canonical_factor
from wattline.domain.timeutil import zone

from ..errors import VendorUnavailable
from ..models import RejectedRecord, VendorPlant, VendorPointSpec, VendorRecord
from ..parsing import BadValue, to_number

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
_E, _P, _S, _C = MetricType.INTERVAL_ENERGY, MetricType.POWER, MetricType.SOC, MetricType.COUNTER

POINTS = [
    VendorPointSpec("solar_w", _P, "powerDetails.Production", "W"),
    VendorPointSpec("load_w", _P, "powerDetails.Consumption", "W"),
    VendorPointSpec("grid_w", _P, "powerDetails.Purchased-FeedIn", "W"),
    VendorPointSpec("battery_w", _P, "currentPowerFlow.STORAGE", "kW"),
    VendorPointSpec("battery_soc", _S, "currentPowerFlow.STORAGE.chargeLevel", "%"),
    VendorPointSpec("solar_kwh", _E, "energyDetails.Production", "Wh"),
    VendorPointSpec("load_kwh", _E, "energyDetails.Consumption", "Wh"),
    VendorPointSpec("grid_import_kwh", _E, "energyDetails.Purchased", "Wh"),
    VendorPointSpec("grid_export_kwh", _E, "energyDetails.FeedIn", "Wh"),
    VendorPointSpec("self_consumption_kwh", _E, "energyDetails.SelfConsumption", "Wh"),
    VendorPointSpec("solar_lifetime_kwh", _C, "overview.lifeTimeData.energy", "Wh"),
]

ENERGY_KEYS = {"Production": "solar_kwh", "Consumption": "load_kwh", "Purchased": "grid_import_kwh",
               "FeedIn": "grid_export_kwh", "SelfConsumption": "self_consumption_kwh"}
POWER_KEYS = {"Production": "solar_w", "Consumption": "load_w"}
SLOT_S = {"QUARTER_OF_AN_HOUR": 900, "HOUR": 3600}


# -- site-local time ------------------------------------------------------------------------


def parse_local(stamp: Any, tz: str) -> list[tuple[int, float]]:
    """The real instants of a site-local ``YYYY-MM-DD hh:mm:ss``: ``[(utc_ts, share)]``.

    One instant normally; none for a wall time skipped by DST (the gap); both
    occurrences, each with share 0.5, for a wall time repeated when DST ends.
    BadValue for a string that is not such a date.
    """
    if not isinstance(stamp, str):
        raise BadValue(f"date {stamp!r} is not a string")
    try:
        naive = datetime.strptime(stamp, DATE_FORMAT)
    except ValueError:
        raise BadValue(f"date {stamp[:40]!r} is not YYYY-MM-DD hh:mm:ss") from None
    z = zone(tz)
    first, second = naive.replace(tzinfo=z, fold=0), naive.replace(tzinfo=z, fold=1)
    t0, t1 = int(first.timestamp()), int(second.timestamp())
    if datetime.fromtimestamp(t0, z).replace(tzinfo=None) != naive:
        return []  # does not exist (spring-forward gap)
    if t0 != t1:
        return [(min(t0, t1), 0.5), (max(t0, t1), 0.5)]  # repeated (fall-back)
    return [(t0, 1.0)]


def local_text(ts: int, tz: str) -> str:
    """Epoch ``ts`` as the site-local naive string the API takes as a parameter."""
    return datetime.fromtimestamp(int(ts), zone(tz)).strftime(DATE_FORMAT)


def _slot_end(start_ts: int, slot_s: int | None, tz: str) -> int:
    if slot_s is not None:
        return start_ts + slot_s
    local = datetime.fromtimestamp(start_ts, zone(tz)).replace(tzinfo=None)  # DAY: next local midnight
    nxt = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0)
    return int(nxt.replace(tzinfo=zone(tz)).timestamp())


# -- error bodies ---------------------------------------------------------------------------------

_HTML_MESSAGE = re.compile(r"<b>\s*Message\s*</b>\s*(.*?)\s*</p>", re.I | re.S)


def error_message(response: httpx.Response) -> str:
    """The message of an error answer: JSON ``{message}`` or a Tomcat HTML page."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("message", "String", "error_description", "error"):
            if isinstance(body.get(key), str):
                return body[key][:200]
    match = _HTML_MESSAGE.search(response.text)
    if match:
        return html.unescape(re.sub(r"<[^>]+>", "", match.group(1))).strip()[:200]
    return response.reason_phrase or f"HTTP {response.status_code}"


# -- details, energy and power --------------------------------------------------------------------


def parse_details(payload: Any) -> VendorPlant:
    """``/site/{id}/details`` (or one ``/sites/list`` entry) as a VendorPlant with its zone."""
    site = payload.get("details", payload) if isinstance(payload, dict) else None
    if not isinstance(site, dict) or "id" not in site:
        raise VendorUnavailable("site details without an id")
    location = site.get("location") if isinstance(site.get("location"), dict) else {}
    tz = location.get("timeZone") or None
    if tz is not None:
        try:
            zone(tz)
        except Exception:
            raise VendorUnavailable(f"site {site.get('id')} has an unknown timeZone {str(tz)[:40]!r}") from None
    try:
        peak = to_number(site.get("peakPower"), "peakPower")
    except BadValue:
        peak = None
    return VendorPlant(vendor_plant_id=str(site["id"]), name=str(site.get("name") or ""), capacity_kw=peak,
                       timezone=tz, raw=site)


class _Slots:
    """Values by slot end, with the raw entries they came from."""

    def __init__(self) -> None:
        self.values: dict[int, dict[str, float]] = {}
        self.raw: dict[int, dict[str, Any]] = {}
        self.seen: set[int] = set()
        self.rejected: list[RejectedRecord] = []
        self.no_value: set[str] = set()  # dates seen with a null or missing value

    def empty(self) -> int:
        """Dates that carried no value in any meter (future slots, night gaps, DST gap)."""
        with_value = {raw["date"] for raw in self.raw.values()}
        return len(self.no_value - with_value)

    def put(self, end: int, key: str, value: float, raw_key: str, raw_value: Any, date: str) -> None:
        self.values.setdefault(end, {})[key] = value
        entry = self.raw.setdefault(end, {"date": date})
        entry[raw_key] = raw_value


def _factor(unit: Any, metric: MetricType, default: str) -> float:
    try:
        return to_canonical_factor(str(unit or default), metric)
    except UnitError:
        raise VendorUnavailable(f"unexpected unit {str(unit)[:20]!r}") from None


def _add_series(slots: _Slots, meter: str, values: Any, key: str, factor: float, metric: MetricType,
                slot_s: int | None, tz: str, section: str) -> None:
    if not isinstance(values, list):
        slots.rejected.append(RejectedRecord(raw={"meter": meter, "values": values},
                                             reason=f"{section} {meter}: values is not a list"))
        return
    for entry in values:
        if not isinstance(entry, dict):
            slots.rejected.append(RejectedRecord(raw=entry, reason=f"{section} {meter}: entry is not an object"))
            continue
        date = entry.get("date")
        try:
            instants = parse_local(date, tz)
        except BadValue as exc:
            slots.rejected.append(RejectedRecord(raw={"meter": meter, **entry}, reason=f"{section} {meter}: {exc}"))
            continue
        raw_value = entry.get("value")
        if raw_value is None:  # null or missing: no reading, not 0
            slots.no_value.add(str(date))
            continue
        try:
            number = to_number(raw_value, f"{section} {meter} value at {date}")
        except BadValue as exc:
            slots.rejected.append(RejectedRecord(raw={"meter": meter, **entry}, reason=str(exc)))
            continue
        if not instants:
            slots.rejected.append(RejectedRecord(
                raw={"meter": meter, **entry},
                reason=f"{section} {meter}: local time {date} does not exist in {tz} (DST gap) but has a value"))
            continue
        for start, share in instants:
            end = _slot_end(start, slot_s, tz)
            value = number * factor * (share if metric is not MetricType.POWER else 1.0)
            slots.put(end, key, value, f"{section}.{meter}", raw_value, str(date))


def _slot_seconds(section: dict, name: str) -> int | None:
    unit = section.get("timeUnit", "QUARTER_OF_AN_HOUR")
    if unit == "DAY":
        return None
    if unit not in SLOT_S:
        raise VendorUnavailable(f"{name} timeUnit {str(unit)[:30]!r} is not supported")
    return SLOT_S[unit]


def parse_meters(energy: Any, power: Any, tz: str) -> tuple[list[VendorRecord], list[RejectedRecord], int]:
    """Records of an ``energyDetails`` and a ``powerDetails`` answer (either may be None).

    Returns (records by slot end, rejected entries, slots that carried no value at all).
    """
    slots = _Slots()
    for payload, name, metric, keys in ((energy, "energyDetails", _E, ENERGY_KEYS),
                                        (power, "powerDetails", _P, {**POWER_KEYS, "Purchased": "_p_in",
                                                                     "FeedIn": "_p_out"})):
        if payload is None:
            continue
        section = payload.get(name) if isinstance(payload, dict) else None
        if not isinstance(section, dict) or not isinstance(section.get("meters"), list):
            raise VendorUnavailable(f"{name} answer without meters")
        factor = _factor(section.get("unit"), metric, "Wh" if metric is _E else "W")
        slot_s = _slot_seconds(section, name)
        for meter in section["meters"]:
            mtype = meter.get("type") if isinstance(meter, dict) else None
            key = keys.get(str(mtype))
            if key is None:
                continue  # a meter we do not map (e.g. a future type)
            _add_series(slots, str(mtype), meter.get("values"), key, factor, metric, slot_s, tz, name)
    # net grid power from the two directions, when both exist for a slot
    for values in slots.values.values():
        p_in, p_out = values.pop("_p_in", None), values.pop("_p_out", None)
        if p_in is not None and p_out is not None:
            values["grid_w"] = p_in - p_out
    records = [VendorRecord(ts=end, values=v, raw=slots.raw[end]) for end, v in sorted(slots.values.items()) if v]
    return records, slots.rejected, slots.empty()


def parse_site_values(payload: Any, tz: str) -> tuple[list[VendorRecord], list[RejectedRecord]]:
    """``/site/{id}/energy`` (production Wh) or ``/site/{id}/power`` (production W)."""
    if isinstance(payload, dict) and isinstance(payload.get("energy"), dict):
        name, metric, key = "energy", _E, "solar_kwh"
    elif isinstance(payload, dict) and isinstance(payload.get("power"), dict):
        name, metric, key = "power", _P, "solar_w"
    else:
        raise VendorUnavailable("answer holds neither energy nor power")
    section = payload[name]
    slots = _Slots()
    factor = _factor(section.get("unit"), metric, "Wh" if metric is _E else "W")
    _add_series(slots, "Production", section.get("values"), key, factor, metric, _slot_seconds(section, name), tz, name)
    records = [VendorRecord(ts=end, values=v, raw=slots.raw[end]) for end, v in sorted(slots.values.items())]
    return records, slots.rejected


# -- now: overview and currentPowerFlow ------------------------------------------------------------


def _node(flow: dict, name: str) -> dict | None:
    for key, value in flow.items():
        if key.upper() == name and isinstance(value, dict):
            return value
    return None


def _links(flow: dict) -> set[tuple[str, str]]:
    out = set()
    for c in flow.get("connections") or []:
        if isinstance(c, dict):
            out.add((str(c.get("from", "")).upper(), str(c.get("to", "")).upper()))
    return out


def parse_power_flow(payload: Any) -> dict[str, float]:
    """Signed canonical values (kW, %) from a ``currentPowerFlow`` answer.

    ``grid_w`` + import (GRID -> LOAD), − export (LOAD -> GRID); ``battery_w`` +
    discharging, − charging (from ``status`` or the connections). A node that is
    missing, or a power whose direction nothing states, is left out.
    """
    flow = payload.get("siteCurrentPowerFlow") if isinstance(payload, dict) else None
    if not isinstance(flow, dict):
        raise VendorUnavailable("currentPowerFlow answer without siteCurrentPowerFlow")
    factor = _factor(flow.get("unit"), _P, "kW")
    links = _links(flow)
    out: dict[str, float] = {}

    def power(node: dict, name: str) -> float | None:
        if node.get("currentPower") is None:
            return None
        return to_number(node.get("currentPower"), f"{name}.currentPower") * factor

    for name, key in (("PV", "solar_w"), ("LOAD", "load_w")):
        node = _node(flow, name)
        if node is not None and (p := power(node, name)) is not None:
            out[key] = p
    grid = _node(flow, "GRID")
    if grid is not None and (p := power(grid, "GRID")) is not None:
        if p == 0:
            out["grid_w"] = 0.0
        elif ("GRID", "LOAD") in links:
            out["grid_w"] = p
        elif ("LOAD", "GRID") in links:
            out["grid_w"] = -p
    storage = _node(flow, "STORAGE")
    if storage is not None:
        if storage.get("chargeLevel") is not None:
            out["battery_soc"] = to_number(storage["chargeLevel"], "STORAGE.chargeLevel")
        p = power(storage, "STORAGE")
        status = str(storage.get("status", "")).lower()
        if p is not None:
            charging = status == "charging" or any(b == "STORAGE" for _, b in links)
            discharging = status == "discharging" or any(a == "STORAGE" for a, _ in links)
            if p == 0:
                out["battery_w"] = 0.0
            elif discharging and not charging:
                out["battery_w"] = p
            elif charging and not discharging:
                out["battery_w"] = -p
    return out


def parse_overview(payload: Any, tz: str) -> tuple[int, dict[str, float]]:
    """(UTC epoch of ``lastUpdateTime``, values) of an ``overview`` answer.

    Values: ``solar_w`` from ``currentPower.power`` (W) and ``solar_lifetime_kwh``
    from ``lifeTimeData.energy`` (Wh). BadValue when the time is missing or invalid.
    """
    ov = payload.get("overview") if isinstance(payload, dict) else None
    if not isinstance(ov, dict):
        raise VendorUnavailable("overview answer without overview")
    instants = parse_local(ov.get("lastUpdateTime"), tz)
    if not instants:
        raise BadValue(f"lastUpdateTime {ov.get('lastUpdateTime')} does not exist in {tz}")
    ts = instants[0][0]  # a repeated wall time: its first occurrence
    values: dict[str, float] = {}
    current = ov.get("currentPower")
    if isinstance(current, dict) and current.get("power") is not None:
        values["solar_w"] = to_number(current["power"], "currentPower.power") * 1e-3
    life = ov.get("lifeTimeData")
    if isinstance(life, dict) and life.get("energy") is not None:
        values["solar_lifetime_kwh"] = to_number(life["energy"], "lifeTimeData.energy") * 1e-3
    return ts, values


def count_meters(payload: Any) -> int:
    """Values in an energyDetails / powerDetails answer (validating its shape)."""
    if not isinstance(payload, dict):
        raise VendorUnavailable("answer is not a JSON object")
    for name in ("energyDetails", "powerDetails"):
        section = payload.get(name)
        if isinstance(section, dict) and isinstance(section.get("meters"), list):
            return sum(len(m.get("values") or []) for m in section["meters"] if isinstance(m, dict))
    raise VendorUnavailable("answer without meters")

"""Fronius local Solar API v1 answers -> Wattline records (pure functions).

Written against the captures in ``vendor-fixtures/fronius/`` (pyfronius, the Symo
Hybrid of akleber/fronius-json-tools, Home Assistant's GEN24):

* Envelope ``{"Head": {"Status": {"Code", "Reason", "UserMessage"}, "Timestamp"},
  "Body": {"Data": ...}}``; ``Status.Code != 0`` is an error. An unknown path answers
  an HTML 404 page.
* ``Head.Timestamp`` is ISO-8601 with the device's local offset: the record's instant.
* ``GetPowerFlowRealtimeData.fcgi`` ``Site``: ``P_PV``, ``P_Grid`` (+ import),
  ``P_Load`` (**negative** for consumption), ``P_Akku`` (+ discharge per Fronius' docs)
  in **W**; ``E_Total`` / ``E_Day`` in **Wh** (``E_Day`` is null on a GEN24);
  ``Inverters.<n>.SOC`` %. A null is "not measured" (e.g. ``P_PV`` of an inverter
  asleep at night): the field stays out of the record.
* ``GetArchiveData.cgi`` (``Scope=System``, one local day, ``Channel=...``): per device
  ``{"Start": ISO, "Data": {channel: {"Unit", "Values": {"<seconds after Start>": v}}}}``;
  the meter's ``EnergyReal_WAC_Plus_Absolute`` / ``_Minus_Absolute`` are cumulative
  Wh (import / export of a grid-located meter), every 5 minutes.

==================  =================  ======  =======================================
vendor field        point              vendor  canonical
==================  =================  ======  =======================================
Site.P_PV           ``solar_w``        W       kW (/1000)
-Site.P_Load        ``load_w``         W       kW, sign flipped (consumption +)
Site.P_Grid         ``grid_w``         W       kW (+ import)
Site.P_Akku         ``battery_w``      W       kW (+ discharging, Wattline's sign)
Inverters.*.SOC     ``battery_soc``    %       %
Site.E_Total        ``solar_kwh``      Wh      kWh, lifetime counter
Site.E_Day          ``solar_today_kwh`` Wh     kWh, resets at local midnight
..._Plus_Absolute   ``grid_import_kwh`` Wh     kWh, counter
..._Minus_Absolute  ``grid_export_kwh`` Wh     kWh, counter
==================  =================  ======  =======================================
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..errors import VendorRequestError, VendorUnavailable
from ..models import RejectedRecord, VendorRecord
from ..parsing import BadValue, to_number

API_VERSION_PATH = "/solar_api/GetAPIVersion.cgi"
POWER_FLOW_PATH = "/solar_api/v1/GetPowerFlowRealtimeData.fcgi"
ARCHIVE_PATH = "/solar_api/v1/GetArchiveData.cgi"
ARCHIVE_CHANNELS = {
    "EnergyReal_WAC_Plus_Absolute": "grid_import_kwh",
    "EnergyReal_WAC_Minus_Absolute": "grid_export_kwh",
}
# (Site field, point key, factor to the canonical unit incl. the sign flip)
_SITE_FIELDS = (
    ("P_PV", "solar_w", 1e-3),
    ("P_Load", "load_w", -1e-3),
    ("P_Grid", "grid_w", 1e-3),
    ("P_Akku", "battery_w", 1e-3),  # + discharging already: Wattline's sign
    ("E_Total", "solar_kwh", 1e-3),
    ("E_Day", "solar_today_kwh", 1e-3),
)


def parse_instant(text: Any, field: str = "Timestamp") -> int:
    """UTC epoch seconds of an ISO-8601 time with an offset; BadValue otherwise."""
    if not isinstance(text, str):
        raise BadValue(f"{field} is not a string")
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadValue(f"{field} {text[:40]!r} is not ISO-8601") from None
    if dt.utcoffset() is None:
        raise BadValue(f"{field} {text[:40]!r} has no offset")
    return int(dt.timestamp())


def check_envelope(payload: Any) -> Any:
    """``Body.Data`` of a successful answer, or the VendorError its status names."""
    if not isinstance(payload, dict) or not isinstance(payload.get("Head"), dict):
        raise VendorUnavailable("answer without the Head/Body envelope")
    status = payload["Head"].get("Status") or {}
    code = status.get("Code")
    if code != 0:
        reason = str(status.get("Reason") or status.get("UserMessage") or "request refused")[:200]
        raise VendorRequestError(f"Solar API status {code}: {reason}", code=str(code))
    body = payload.get("Body")
    if not isinstance(body, dict) or "Data" not in body:
        raise VendorUnavailable("answer without Body.Data")
    return body["Data"]


def parse_power_flow(payload: dict) -> tuple[list[VendorRecord], list[RejectedRecord]]:
    """One record from a GetPowerFlowRealtimeData answer (or one rejected, with why)."""
    data = check_envelope(payload)
    site = data.get("Site") if isinstance(data, dict) else None
    if not isinstance(site, dict):
        return [], [RejectedRecord(payload, "Body.Data.Site is missing")]
    problems: list[str] = []
    values: dict[str, float] = {}
    try:
        ts = parse_instant(payload["Head"].get("Timestamp"), "Head.Timestamp")
    except BadValue as exc:
        problems.append(str(exc))
        ts = 0
    for name, key, factor in _SITE_FIELDS:
        if site.get(name) is None:
            continue  # not measured: no reading (never 0)
        try:
            values[key] = round(to_number(site[name], f"Site.{name}") * factor, 9) + 0.0  # + 0.0: no -0.0
        except BadValue as exc:
            problems.append(str(exc))
    inverters = data.get("Inverters") if isinstance(data.get("Inverters"), dict) else {}
    socs = [(n, inv["SOC"]) for n, inv in sorted(inverters.items())
            if isinstance(inv, dict) and inv.get("SOC") is not None]
    if socs:
        name, soc = socs[0]  # one battery per site in every capture
        try:
            values["battery_soc"] = to_number(soc, f"Inverters.{name}.SOC")
            if not 0.0 <= values["battery_soc"] <= 100.0:
                problems.append(f"Inverters.{name}.SOC {soc!r} is outside 0..100")
        except BadValue as exc:
            problems.append(str(exc))
    if problems:
        return [], [RejectedRecord(payload, "; ".join(problems))]
    return [VendorRecord(ts=ts, values=values, raw=payload)], []


def parse_archive(payload: dict) -> tuple[list[VendorRecord], list[RejectedRecord]]:
    """Records (one per instant) from a GetArchiveData answer of the meter channels.

    A value that is not a finite number is rejected with its device, channel and
    offset; a null is not measured. Devices without those channels are ignored.
    """
    data = check_envelope(payload)
    if not isinstance(data, dict):
        raise VendorUnavailable("archive Body.Data is not an object")
    by_ts: dict[int, dict[str, float]] = {}
    raw_by_ts: dict[int, dict[str, Any]] = {}
    rejected: list[RejectedRecord] = []
    for device, entry in sorted(data.items()):
        channels = entry.get("Data") if isinstance(entry, dict) else None
        if not isinstance(channels, dict):
            continue
        wanted = {c: k for c, k in ARCHIVE_CHANNELS.items() if c in channels}
        if not wanted:
            continue
        try:
            start = parse_instant(entry.get("Start"), f"{device}.Start")
        except BadValue as exc:
            rejected.append(RejectedRecord({"device": device, "Start": entry.get("Start")}, str(exc)))
            continue
        for channel, key in wanted.items():
            series = channels[channel]
            unit = str(series.get("Unit", "")) if isinstance(series, dict) else ""
            values = series.get("Values") if isinstance(series, dict) else None
            if unit != "Wh" or not isinstance(values, dict):
                rejected.append(RejectedRecord({"device": device, "channel": channel},
                                               f"{channel}: expected Unit Wh and Values, got {unit!r}"))
                continue
            for offset, value in values.items():
                raw = {"device": device, "channel": channel, "Start": entry.get("Start"), "offset": offset,
                       "value": value}
                try:
                    ts = start + int(offset)
                except (TypeError, ValueError):
                    rejected.append(RejectedRecord(raw, f"{channel}: offset {str(offset)[:20]!r} is not seconds"))
                    continue
                if value is None:
                    continue
                try:
                    number = round(to_number(value, channel) * 1e-3, 9)
                except BadValue as exc:
                    rejected.append(RejectedRecord(raw, str(exc)))
                    continue
                by_ts.setdefault(ts, {})[key] = number
                raw_by_ts.setdefault(ts, {"device": device, "Start": entry.get("Start"), "offset": offset})[channel] = value
    records = [VendorRecord(ts=t, values=by_ts[t], raw=raw_by_ts[t]) for t in sorted(by_ts)]
    return records, rejected


def count_archive(payload: Any) -> int:
    """Number of values in an archive answer (for the call log)."""
    data = payload.get("Body", {}).get("Data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        return 0
    n = 0
    for entry in data.values():
        for series in (entry.get("Data") or {}).values() if isinstance(entry, dict) else ():
            if isinstance(series, dict) and isinstance(series.get("Values"), dict):
                n += len(series["Values"])
    return n

"""Mondo Power answers -> Wattline records (pure functions).

Shapes from ``vendor-fixtures/mondo-power/`` (the real ``liveusage_widget`` capture;
the subcircuit and token files are SYNTHETIC shapes from LiveOne's interfaces) and
VENDOR-NOTES.md:

* ``/liveusage/widget/{groupId}``: ``demand`` (site load, **kW**), ``lastRecordedUtc``
  (ISO UTC: the sample's instant; stale data repeats it), ``liveUsageData.{battery,
  grid, solar, generator}.value`` in **kW** and ``battery.stateOfCharge`` in %.
  Signs (the capture balances to its rounding: solar 9.58 + grid 2.3 = 11.88, demand 4.35
  + battery 7.52 = 11.87):
  battery + = charging (flipped: Wattline stores + discharging), grid + = import. A device whose ``deviceStatus`` is not
  ``Online`` reports no reading (its ``value`` 0 is a placeholder, not a measurement).
* ``/subcircuit/{groupId}``: ``rows[]`` of monitoring points, ``energyNowW`` in **W**,
  ``totalEnergyWh`` in **Wh** (monotonic: a counter). No timestamp and no SoC: a poll
  takes the instant of the live usage it is paired with. Rows are summed per kind of
  ``loadType``; one bad row drops its kind from the record (a partial sum of counters
  would look like a reset), and is rejected with the reason.

=========================================  ===================  ======  ==========
vendor field                               point                vendor  canonical
=========================================  ===================  ======  ==========
demand                                     ``load_w``           kW      kW
liveUsageData.solar.value                  ``solar_w``          kW      kW
-liveUsageData.battery.value               ``battery_w``        kW      kW (+ discharging)
liveUsageData.grid.value                   ``grid_w``           kW      kW (+ import)
liveUsageData.generator.value              ``generator_w``      kW      kW
liveUsageData.battery.stateOfCharge        ``battery_soc``      %       %
rows[PvInverter|HybridPv|Hybridinverter]   ``solar_kwh``        Wh      kWh counter
rows[HybridBattery]                        ``battery_kwh``      Wh      kWh counter
rows[GateMeter]                            ``grid_kwh``         Wh      kWh counter
rows[Other]                                ``other_kwh``        Wh      kWh counter
rows[...].energyNowW                       ``<kind>_circuit_w`` W       kW
=========================================  ===================  ======  ==========
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from wattline.domain.metrics import MetricType

from ..errors import VendorAuthError, VendorUnavailable
from ..models import RejectedRecord, VendorPointSpec, VendorRecord
from ..parsing import BadValue, to_number

_P, _C, _S = MetricType.POWER, MetricType.COUNTER, MetricType.SOC

LIVE_DEVICES = {"solar": "solar_w", "battery": "battery_w", "grid": "grid_w", "generator": "generator_w"}
KINDS = {"PvInverter": "solar", "HybridPv": "solar", "Hybridinverter": "solar", "HybridBattery": "battery",
         "GateMeter": "grid", "Other": "other"}

POINTS = [
    VendorPointSpec("load_w", _P, "demand", "kW"),
    *[VendorPointSpec(key, _P, f"liveUsageData.{dev}.value", "kW") for dev, key in LIVE_DEVICES.items()],
    VendorPointSpec("battery_soc", _S, "liveUsageData.battery.stateOfCharge", "%"),
    *[VendorPointSpec(f"{kind}_kwh", _C, f"rows[{kind}].totalEnergyWh", "Wh")
      for kind in ("solar", "battery", "grid", "other")],
    *[VendorPointSpec(f"{kind}_circuit_w", _P, f"rows[{kind}].energyNowW", "W")
      for kind in ("solar", "battery", "grid", "other")],
]

_TOKEN_INPUT = re.compile(
    r"<input[^>]*name=\"__RequestVerificationToken\"[^>]*value=\"([^\"]+)\"|"
    r"<input[^>]*value=\"([^\"]+)\"[^>]*name=\"__RequestVerificationToken\"", re.I)
BAD_LOGIN_TEXT = "Invalid login attempt"


def verification_token(page: str) -> str:
    """The ``__RequestVerificationToken`` of the login form; VendorUnavailable if absent."""
    m = _TOKEN_INPUT.search(page or "")
    if not m:
        raise VendorUnavailable("login page without __RequestVerificationToken")
    return m.group(1) or m.group(2)


def parse_token_response(payload: Any) -> tuple[str, float | None, str | None]:
    """(access token, expires_in s or None, refresh token or None) of /connect/token."""
    if not isinstance(payload, dict):
        raise VendorUnavailable("token answer is not an object")
    if payload.get("error"):
        raise VendorAuthError(f"token refused ({str(payload['error'])[:60]})", code=str(payload["error"])[:60])
    token = payload.get("access_token")
    if not isinstance(token, str) or not token:
        raise VendorUnavailable("token answer without access_token")
    if str(payload.get("token_type", "Bearer")).lower() != "bearer":
        raise VendorUnavailable(f"unexpected token_type {str(payload.get('token_type'))[:20]!r}")
    try:
        expires = to_number(payload["expires_in"], "expires_in") if payload.get("expires_in") is not None else None
    except BadValue:
        expires = None
    refresh = payload.get("refresh_token")
    return token, expires, refresh if isinstance(refresh, str) and refresh else None


def _instant(text: Any) -> int:
    if not isinstance(text, str):
        raise BadValue("lastRecordedUtc is missing")
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadValue(f"lastRecordedUtc {text[:40]!r} is not ISO-8601") from None
    if dt.utcoffset() is None:  # documented as UTC: a naive stamp is read as UTC
        return int(dt.replace(tzinfo=timezone.utc).timestamp())
    return int(dt.timestamp())


def parse_live_usage(payload: Any) -> tuple[int, dict[str, float], list[str]]:
    """(instant, values, problems) of a live-usage answer; problems reject the record."""
    if not isinstance(payload, dict):
        raise VendorUnavailable("live usage is not an object")
    problems: list[str] = []
    values: dict[str, float] = {}
    try:
        ts = _instant(payload.get("lastRecordedUtc"))
    except BadValue as exc:
        problems.append(str(exc))
        ts = 0
    if payload.get("demand") is not None:
        try:
            values["load_w"] = to_number(payload["demand"], "demand")
        except BadValue as exc:
            problems.append(str(exc))
    live = payload.get("liveUsageData")
    if not isinstance(live, dict):
        problems.append("liveUsageData is missing")
        live = {}
    for device, key in LIVE_DEVICES.items():
        entry = live.get(device)
        if not isinstance(entry, dict) or entry.get("deviceStatus", "Online") != "Online":
            continue  # absent or offline: not measured
        if entry.get("value") is not None:
            try:
                values[key] = to_number(entry["value"], f"{device}.value")
                if device == "battery":  # Mondo's + charging -> Wattline's + discharging
                    values[key] = -values[key] + 0.0
            except BadValue as exc:
                problems.append(str(exc))
        if device == "battery" and "stateOfCharge" in entry:
            try:
                soc = to_number(entry["stateOfCharge"], "battery.stateOfCharge")  # 0 is a reading
                if not 0.0 <= soc <= 100.0:
                    raise BadValue(f"battery.stateOfCharge {soc:g} is outside 0..100")
                values["battery_soc"] = soc
            except BadValue as exc:
                problems.append(str(exc))
    return ts, values, problems


def parse_subcircuit(payload: Any) -> tuple[dict[str, float], list[RejectedRecord]]:
    """Values summed per kind (kWh counters, kW powers) and the rows rejected (with why)."""
    rows = payload.get("rows") if isinstance(payload, dict) else None
    if not isinstance(rows, list):
        raise VendorUnavailable("subcircuit answer without rows")
    sums: dict[str, dict[str, float]] = {}
    bad_kinds: set[str] = set()
    rejected: list[RejectedRecord] = []
    for row in rows:
        if not isinstance(row, dict):
            rejected.append(RejectedRecord(row, "subcircuit row is not an object"))
            continue
        kind = KINDS.get(str(row.get("loadType")))
        if kind is None:
            rejected.append(RejectedRecord(row, f"unknown loadType {str(row.get('loadType'))[:40]!r}"))
            continue
        try:
            total_kwh = to_number(row.get("totalEnergyWh"), "totalEnergyWh") * 1e-3
            if total_kwh < 0:
                raise BadValue("totalEnergyWh is negative")
            now_kw = to_number(row.get("energyNowW"), "energyNowW") * 1e-3
        except BadValue as exc:
            bad_kinds.add(kind)
            rejected.append(RejectedRecord(row, f"{row.get('monitoringPointName', '?')}: {exc}"))
            continue
        acc = sums.setdefault(kind, {"kwh": 0.0, "kw": 0.0})
        acc["kwh"] += total_kwh
        acc["kw"] += now_kw
    values: dict[str, float] = {}
    for kind, acc in sums.items():
        if kind in bad_kinds:
            continue
        values[f"{kind}_kwh"] = round(acc["kwh"], 6)
        values[f"{kind}_circuit_w"] = round(acc["kw"], 6) + 0.0
    return values, rejected


def poll_record(live: Any, sub: Any | None) -> tuple[list[VendorRecord], list[RejectedRecord]]:
    """One record of a poll: live usage (its instant) plus the subcircuit sums.

    A problem in the live usage rejects the record (with both answers as raw); bad
    subcircuit rows are rejected on their own and their kind left out.
    """
    ts, values, problems = parse_live_usage(live)
    raw = {"liveusage": live, "subcircuit": sub}
    rejected: list[RejectedRecord] = []
    if sub is not None:
        circuit_values, rejected = parse_subcircuit(sub)
        values.update(circuit_values)
    if problems:
        return [], [RejectedRecord(raw, "; ".join(problems)), *rejected]
    if not values:
        return [], [RejectedRecord(raw, "no measured value"), *rejected]
    return [VendorRecord(ts=ts, values=values, raw=raw)], rejected

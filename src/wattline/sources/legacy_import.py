"""The predecessor's activity log (seeds 002/004) -> synthetic seed-002 telemetry documents.

The old system logged each switch event of a device with the device's rated power
(``ActivityLog``) and kept a per-device energy total (``EnergyConsumption``). An
export of it is read as CSV (with a header) or JSON lines (one object a line):

==================  ========  ==========================================================
column              required  meaning
==================  ========  ==========================================================
timestamp           yes       ISO-8601 with an offset (``2025-11-05T09:00:00+05:30``), or
                              UTC epoch seconds; whole seconds
esp32_name          yes       the controller, e.g. ``ESP01``
device_id           yes       the device on it, e.g. ``light_1``
classroom           yes       e.g. ``CR-101`` (the same on every row of a device)
event               yes       ``on`` or ``off``
rated_power_w       on rows   the device's rated power while on, W (> 0)
legacy_total_kwh    no        the old system's energy total of the device, kWh; rows
                              that give it must agree
==================  ========  ==========================================================

The log is a step function per device: rated power from an ``on`` to the next event,
0 W from an ``off``. Each event becomes a document at its instant (``power_w``,
``switch_state``), and each change of power gets one more document one second before
it, reporting the power and switch state until then. The result is the step function
under either rule the ledger may integrate power by:

* with the switch state (the ledger's rule for devices: the state and power reported
  with a reading hold until the next reading; energy counts only while on), each
  entry holds its start's power, so every on-spell is rated power × its duration and
  its on-time is exactly the spell's;
* by the trapezoid rule (a series without a switch state), the second before each
  change counts half of the old and half of the new power: the half second gained
  where the power rises is the half second lost where it falls, so each on-spell
  (0 W before, 0 W after) comes out the same.

Both up to the ledger's rounding of each entry to whole milli-watt-hours (at most half
of one per entry). A device must end with an ``off`` (an open spell has no end to
integrate to).

Pure: bytes in, documents out; nothing here touches the store. The whole file is
checked before anything is returned as valid, and every problem is reported with its
line number (line 0: the file as a whole).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wattline.domain import timeutil
from wattline.domain.devices import device_asset_name, name_problem

SOURCE = "legacy"
COLUMNS = ("timestamp", "esp32_name", "device_id", "classroom", "event", "rated_power_w", "legacy_total_kwh")
REQUIRED = ("timestamp", "esp32_name", "device_id", "classroom", "event")
ORIGIN = "legacy-import"  # kept in each synthetic document (ignored by the payload model)
MAX_CLASSROOM = 200


@dataclass(frozen=True)
class LineError:
    """Why line ``line`` of the file (0: the file as a whole) cannot be imported."""

    line: int
    reason: str


@dataclass(frozen=True)
class LegacyEvent:
    """One switch event: ``ts`` UTC epoch s, ``rated_w`` W (None on an off row without it)."""

    line: int
    ts: int
    esp32_name: str
    device_id: str
    classroom: str
    on: bool
    rated_w: float | None
    legacy_total_kwh: float | None


@dataclass(frozen=True)
class StepPoint:
    """A synthetic reading: ``ts`` UTC epoch s, ``power_w`` W, ``switch_on``."""

    ts: int
    power_w: float
    switch_on: bool


@dataclass
class LegacyDevice:
    """The events of one device, in time order, and the old system's total for it (kWh)."""

    esp32_name: str
    device_id: str
    classroom: str
    events: list[LegacyEvent] = field(default_factory=list)
    legacy_total_kwh: float | None = None

    @property
    def name(self) -> str:
        return device_asset_name(self.esp32_name, self.device_id)

    @property
    def first_line(self) -> int:
        return min(e.line for e in self.events)

    def points(self) -> list[StepPoint]:
        """The synthetic readings of the device's step function (see the module docstring)."""
        out: list[StepPoint] = []
        power, on = 0.0, False
        for e in self.events:
            new_power = float(e.rated_w) if e.on else 0.0
            if new_power != power or (not out and e.on):
                # one second before the change: the power and switch state until then
                if not out or out[-1].ts < e.ts - 1:
                    out.append(StepPoint(e.ts - 1, power, on))
            out.append(StepPoint(e.ts, new_power, e.on))
            power, on = new_power, e.on
        return out

    def span(self) -> tuple[int, int]:
        """(first, last) instant of its synthetic readings, UTC epoch s."""
        pts = self.points()
        return pts[0].ts, pts[-1].ts

    def step_energy_milli_wh(self) -> int:
        """The exact integral of the step function, milli-Wh (W·s / 3.6)."""
        total = 0.0
        for a, b in zip(self.events, self.events[1:]):
            if a.on:
                total += float(a.rated_w) * (b.ts - a.ts)
        return int(round(total / 3.6))

    def on_time_s(self) -> int:
        """Seconds switched on according to the log."""
        return sum(b.ts - a.ts for a, b in zip(self.events, self.events[1:]) if a.on)

    def documents(self) -> list[dict]:
        """The seed-002 telemetry documents of :meth:`points` (the same log gives the
        same documents, so a re-run is recognised as repeats)."""
        return [{"esp32_name": self.esp32_name, "classroom": self.classroom, "device_id": self.device_id,
                 "timestamp": timeutil.iso(p.ts), "power_w": p.power_w, "switch_state": p.switch_on,
                 "origin": ORIGIN}
                for p in self.points()]


@dataclass
class LegacyLog:
    """A parsed log: its devices (by controller and id) or, if anything is wrong, the errors."""

    format: str = "csv"
    rows: int = 0
    devices: list[LegacyDevice] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def documents(self) -> int:
        return sum(len(d.points()) for d in self.devices)


# -- reading -------------------------------------------------------------------------


def read_legacy_file(path: Path, *, now: int | None = None) -> LegacyLog:
    """:func:`read_legacy` of a file's bytes."""
    return read_legacy(Path(path).read_bytes(), now=now)


def read_legacy(data: bytes, *, now: int | None = None) -> LegacyLog:
    """Parse and check a whole log (CSV with a header, or JSON lines: the first
    character that is not blank decides). ``now`` (UTC epoch s): events after it are
    refused. Never raises for bad content: the errors are in the result."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return LegacyLog(errors=[LineError(line, f"not UTF-8: byte 0x{data[exc.start]:02x} at column {column}")])
    text = text.removeprefix("\ufeff")
    if not text.strip():
        return LegacyLog(errors=[LineError(0, "the file is empty")])
    is_jsonl = text.lstrip().startswith("{")
    log = LegacyLog(format="jsonl" if is_jsonl else "csv")
    rows = _jsonl_rows(text, log) if is_jsonl else _csv_rows(text, log)
    events = []
    for line, row in rows:
        log.rows += 1
        got = _event(line, row, now)
        if isinstance(got, LineError):
            log.errors.append(got)
        else:
            events.append(got)
    if not log.errors:
        _group(events, log)
    log.errors.sort(key=lambda e: e.line)
    if log.errors:
        log.devices = []
    return log


def _csv_rows(text: str, log: LegacyLog):
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as exc:
        log.errors.append(LineError(1, f"not CSV: {exc}"))
        return
    unknown = [h for h in header if h not in COLUMNS]
    missing = [c for c in REQUIRED if c not in header]
    if unknown or missing or len(set(header)) != len(header):
        parts = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
            [f"unknown column(s) {', '.join(unknown)}"] if unknown else []) + (
            ["a column named twice"] if len(set(header)) != len(header) else [])
        log.errors.append(LineError(1, "; ".join(parts) + f" (columns: {', '.join(COLUMNS)})"))
        return
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            log.errors.append(LineError(reader.line_num, f"not CSV: {exc}"))
            return
        if not values or all(not v.strip() for v in values):
            continue  # a blank line
        if len(values) != len(header):
            log.rows += 1
            log.errors.append(LineError(reader.line_num, f"{len(values)} fields, the header has {len(header)}"))
            continue
        yield reader.line_num, dict(zip(header, values))


def _jsonl_rows(text: str, log: LegacyLog):
    for i, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError as exc:
            log.rows += 1
            log.errors.append(LineError(i, f"not JSON: {exc}"))
            continue
        if not isinstance(row, dict):
            log.rows += 1
            log.errors.append(LineError(i, "a line must be a JSON object"))
            continue
        unknown = sorted(str(k) for k in row if k not in COLUMNS)
        if unknown:
            log.rows += 1
            log.errors.append(LineError(i, f"unknown field(s) {', '.join(unknown)} (fields: {', '.join(COLUMNS)})"))
            continue
        yield i, row


def _text(row: dict, key: str) -> str | None:
    v = row.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise ValueError(f"{key} must be text")
    v = v.strip()
    return v or None


def _number(row: dict, key: str) -> float | None:
    v = row.get(key)
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if isinstance(v, bool):
        raise ValueError(f"{key} must be a number")
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, not {str(v)[:40]!r}") from None
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"{key} must be a finite number >= 0")
    return x


def _event(line: int, row: dict[str, Any], now: int | None) -> LegacyEvent | LineError:
    try:
        missing = [c for c in REQUIRED if row.get(c) is None or (isinstance(row.get(c), str) and not row[c].strip())]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        stamp = row["timestamp"]
        if isinstance(stamp, bool) or not isinstance(stamp, (str, int, float)):
            raise ValueError("timestamp must be ISO-8601 text or epoch seconds")
        try:
            ts = timeutil.parse_instant(str(stamp))
        except ValueError as exc:
            raise ValueError(f"timestamp: {exc}") from None
        if ts < 1:
            raise ValueError("timestamp must be after 1970-01-01")
        if now is not None and ts > now:
            raise ValueError(f"timestamp {timeutil.iso(ts)} is in the future")
        esp, dev, room = _text(row, "esp32_name"), _text(row, "device_id"), _text(row, "classroom")
        for what, value in (("esp32_name", esp), ("device_id", dev)):
            problem = name_problem(what, value)
            if problem:
                raise ValueError(problem)
        if len(room) > MAX_CLASSROOM:
            raise ValueError(f"classroom must be 1-{MAX_CLASSROOM} characters")
        event = _text(row, "event").lower()
        if event not in ("on", "off"):
            raise ValueError(f"event must be on or off, not {event[:20]!r}")
        rated, total = _number(row, "rated_power_w"), _number(row, "legacy_total_kwh")
        if event == "on" and not rated:
            raise ValueError("an on event needs rated_power_w > 0")
    except ValueError as exc:
        return LineError(line, str(exc))
    return LegacyEvent(line, ts, esp, dev, room, event == "on", rated, total)


def _group(events: list[LegacyEvent], log: LegacyLog) -> None:
    """Devices from events; the rules that span rows of a device."""
    by_device: dict[tuple[str, str], list[LegacyEvent]] = {}
    for e in events:
        by_device.setdefault((e.esp32_name, e.device_id), []).append(e)
    for (esp, dev), evs in sorted(by_device.items()):
        evs.sort(key=lambda e: (e.ts, e.line))
        d = LegacyDevice(esp, dev, evs[0].classroom, evs)
        first_by_line = min(evs, key=lambda e: e.line)
        d.classroom = first_by_line.classroom
        total_line = None
        for prev, e in zip([None] + evs[:-1], evs):
            if e.classroom != d.classroom:
                log.errors.append(LineError(e.line, f"{d.name} is in classroom {d.classroom!r} on line "
                                                    f"{first_by_line.line}, not {e.classroom!r}"))
            if prev is not None and prev.ts == e.ts:
                log.errors.append(LineError(max(e.line, prev.line), f"two events of {d.name} at "
                                            f"{timeutil.iso(e.ts)} (lines {min(e.line, prev.line)} and "
                                            f"{max(e.line, prev.line)})"))
            if e.legacy_total_kwh is not None:
                if d.legacy_total_kwh is None:
                    d.legacy_total_kwh, total_line = e.legacy_total_kwh, e.line
                elif e.legacy_total_kwh != d.legacy_total_kwh:
                    log.errors.append(LineError(e.line, f"legacy_total_kwh of {d.name} is {d.legacy_total_kwh:g} "
                                                        f"on line {total_line}, not {e.legacy_total_kwh:g}"))
        if evs[-1].on:
            log.errors.append(LineError(evs[-1].line, f"{d.name} is still on at its last event: the log must "
                                                      "end each on-spell with an off event"))
        log.devices.append(d)

"""A controller's status and heartbeat messages (seed 002), validated with pydantic.

``<prefix>/<esp32_name>/status`` (retained; the controller's Last Will) carries
``online`` or ``offline``: as plain text, as a JSON string, or as a JSON object
with a ``status`` field (what the fleet simulator and the firmware publish)::

    {"esp32_name": "ESP01", "classroom": "CR-101", "status": "offline"}
    {"esp32_name": "ESP01", "classroom": "CR-101", "status": "online",
     "timestamp": "2025-11-05T06:12:34Z", "firmware_ver": "v2.0.0", "uptime_seconds": 12}

``<prefix>/<esp32_name>/heartbeat`` (every 30 s) is a JSON object::

    {"esp32_name": "ESP01", "classroom": "CR-101", "timestamp": "2025-11-05T06:12:34Z",
     "uptime_seconds": 86400, "wifi_rssi": -45, "firmware_ver": "v2.0.0", "status": "online"}

Every field but ``status`` (of a status message) is optional; ``esp32_name`` is
required when no topic names the controller (HTTP), and must agree with the topic's
when both do. Units: seconds, dBm. Unknown fields are ignored here and kept in the raw
payload.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wattline.domain import timeutil
from wattline.domain.controller_status import HEARTBEAT, STATUS, STATUSES, ControllerSignal
from wattline.domain.devices import NAME_MAX, NAME_PATTERN
from wattline.sources.devices.payload import Count, Instant, Number, PayloadError, _describe

class _ControllerMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    esp32_name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX, pattern=NAME_PATTERN,
                                   description="the controller, e.g. ESP01 (default: the topic's)")
    classroom: str | None = Field(default=None, max_length=200)
    timestamp: Instant | None = Field(default=None, description="device time, ISO-8601 with offset (or epoch s)")
    uptime_seconds: Count | None = Field(default=None, description="s since the firmware started")
    firmware_ver: str | None = Field(default=None, max_length=64)
    wifi_rssi: Number | None = Field(default=None, allow_inf_nan=False, description="dBm")


class StatusPayload(_ControllerMessage):
    """A controller's announced status (``online`` when it connects, its Last Will ``offline``)."""

    # a JSON-schema enum for the docs; the value is matched case-insensitively below
    status: Literal["online", "offline"] = Field(description="online | offline")


class HeartbeatPayload(_ControllerMessage):
    """A controller's heartbeat: it is alive; firmware, signal and uptime."""

    status: str | None = Field(default=None, max_length=40)


def _error(index: int, message: str, field_name: str | None = None, kind: str = "value_error") -> PayloadError:
    return PayloadError(index, message, field_name,
                        ({"loc": [field_name] if field_name else [], "msg": message, "type": kind},))


def _as_object(doc: Any, kind: str, index: int) -> dict | PayloadError:
    """The message as a mapping: JSON text or bytes parsed; a status may be plain text."""
    if isinstance(doc, (bytes, bytearray)):
        try:
            doc = bytes(doc).decode("utf-8")
        except UnicodeDecodeError:
            return _error(index, "not UTF-8 text", kind="unicode")
    if isinstance(doc, str):
        text = doc.strip()
        if kind == STATUS and text.lower() in STATUSES:  # the plain-text Last Will
            return {"status": text.lower()}
        try:
            doc = json.loads(text)
        except ValueError as exc:
            what = "online, offline or a JSON object" if kind == STATUS else "a JSON object"
            return _error(index, f"not {what}: {exc}", kind="json")
    if kind == STATUS and isinstance(doc, str):  # a JSON string: "online"
        doc = {"status": doc}
    if not isinstance(doc, dict):
        return _error(index, f"a {kind} message must be a JSON object", kind="object_type")
    if kind == STATUS and isinstance(doc.get("status"), str):
        doc = {**doc, "status": doc["status"].strip().lower()}
    return doc


def parse_signal(doc: Any, kind: str, esp32_name: str | None = None, index: int = 0) -> ControllerSignal | PayloadError:
    """A received status or heartbeat message (``kind``) as a :class:`ControllerSignal`, or
    why it is not one. ``esp32_name``: the controller the topic names (None over HTTP)."""
    if kind not in (STATUS, HEARTBEAT):
        raise ValueError(f"kind must be {STATUS} or {HEARTBEAT}, not {kind!r}")
    obj = _as_object(doc, kind, index)
    if isinstance(obj, PayloadError):
        return obj
    model = StatusPayload if kind == STATUS else HeartbeatPayload
    try:
        p = model.model_validate(obj)
    except ValidationError as exc:
        message, field_name, errors = _describe(exc)
        return PayloadError(index, message, field_name, errors)
    name = p.esp32_name or esp32_name
    if name is None:
        return _error(index, "field 'esp32_name': required (no topic names the controller)", "esp32_name", "missing")
    if esp32_name is not None and p.esp32_name is not None and p.esp32_name != esp32_name:
        return _error(index, f"field 'esp32_name': {p.esp32_name!r} differs from the topic's {esp32_name!r}",
                      "esp32_name")
    details = {k: v for k, v in (("classroom", p.classroom), ("firmware_ver", p.firmware_ver),
                                 ("wifi_rssi", p.wifi_rssi), ("uptime_seconds", p.uptime_seconds),
                                 ("status", p.status if kind == HEARTBEAT else None)) if v is not None}
    device_ts = timeutil.to_epoch(p.timestamp) if p.timestamp is not None else None
    return ControllerSignal(name, kind, p.status if kind == STATUS else None, device_ts, details)


def parse_signals(docs: Sequence[Any], kind: str) -> tuple[list[ControllerSignal], list[PayloadError]]:
    """Every document of one kind parsed (HTTP: each must name its controller)."""
    signals: list[ControllerSignal] = []
    errors: list[PayloadError] = []
    for i, d in enumerate(docs):
        got = parse_signal(d, kind, None, i)
        (errors if isinstance(got, PayloadError) else signals).append(got)
    return signals, errors

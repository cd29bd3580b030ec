"""The telemetry document a campus controller publishes (seed 002), validated with pydantic.

::

    {"esp32_name": "ESP01", "classroom": "CR-101", "device_id": "light_1",
     "timestamp": "2025-11-05T06:12:34Z", "power_w": 40, "energy_wh_total": 12345.67,
     "switch_state": {"sw1": true, "sw2": false}, "uptime_seconds": 86400,
     "status": "online", "sequence_no": 12345, "firmware_ver": "v2.0.0", "wifi_rssi": -45}

Units are the firmware's: W, Wh, seconds, dBm. ``timestamp`` is ISO-8601 with an
offset (or UTC epoch seconds, never milliseconds). Numbers must be JSON numbers
(``"40"`` or ``true`` is not a power), switch states JSON booleans. Fields the model does not know are ignored here and
kept in the raw payload. A document must carry at least one measurement
(``power_w``, ``energy_wh_total`` or ``switch_state``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, Sequence

from pydantic import (AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationError,
                      WithJsonSchema, field_validator, model_validator)

from wattline.domain import timeutil
from wattline.domain.devices import NAME_MAX, NAME_PATTERN

MAX_EPOCH_S = 2e10  # a numeric timestamp is epoch seconds up to here (year 2603), never milliseconds


def _no_text_or_bool(value: Any) -> Any:
    if isinstance(value, (str, bool)):
        raise ValueError("must be a JSON number")
    return value


def _epoch_seconds(value: Any) -> Any:
    """A numeric timestamp as an aware datetime (pydantic alone would read a large one
    as milliseconds); text goes on to the ISO-8601 parser."""
    if isinstance(value, bool):
        raise ValueError("must be ISO-8601 text or epoch seconds")
    if isinstance(value, (int, float)):
        if not 0 <= value <= MAX_EPOCH_S:
            raise ValueError(f"epoch seconds must be within [0, {MAX_EPOCH_S:.0f}]")
        return datetime.fromtimestamp(value, timezone.utc)
    return value


# numbers as numbers: "40" or true is not a power; 3.0 is a count, 3.5 is not
Number = Annotated[float, Strict()]
# the largest integer every JSON reader holds exactly (an IEEE double; also within a
# database's int64 column): a counter beyond it is a corrupt message, not a count
MAX_COUNT = 2**53 - 1
Count = Annotated[int, BeforeValidator(_no_text_or_bool), Field(ge=0, le=MAX_COUNT),
                  WithJsonSchema({"type": "integer", "minimum": 0, "maximum": MAX_COUNT})]  # the validator hides "minimum" otherwise
Instant = Annotated[AwareDatetime, BeforeValidator(_epoch_seconds), WithJsonSchema({"anyOf": [
    {"type": "string", "format": "date-time"}, {"type": "number", "minimum": 0, "maximum": MAX_EPOCH_S}]})]


def _name(description: str):
    return Field(min_length=1, max_length=NAME_MAX, pattern=NAME_PATTERN, description=description)


class TelemetryPayload(BaseModel):
    """One telemetry document of one device (seed 002)."""

    # the schema says what _measures_something checks: at least one measurement, not null
    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra={
        "anyOf": [{"required": [name], "properties": {name: {"not": {"type": "null"}}}}
                  for name in ("power_w", "energy_wh_total", "switch_state")]})

    esp32_name: str = _name("the controller, e.g. ESP01")
    device_id: str = _name("the device on that controller, e.g. light_1")
    classroom: str | None = Field(default=None, max_length=200,
                                  description="as the controller believes; the registry wins")
    timestamp: Instant = Field(description="device time, ISO-8601 with offset (or epoch seconds)")
    power_w: Number | None = Field(default=None, allow_inf_nan=False, description="W")
    energy_wh_total: Number | None = Field(default=None, ge=0, allow_inf_nan=False,
                                          description="cumulative Wh since the firmware's counter started")
    switch_state: dict[str, bool] | bool | None = Field(
        default=None, description="the controller's switches by name, e.g. {\"sw1\": true}")
    uptime_seconds: Count | None = Field(default=None, description="s since the firmware started")
    status: str | None = Field(default=None, max_length=40)
    sequence_no: Count | None = Field(default=None, description="message count of this firmware run")
    firmware_ver: str | None = Field(default=None, max_length=64)
    wifi_rssi: Number | None = Field(default=None, allow_inf_nan=False, description="dBm")

    @field_validator("switch_state", mode="before")
    @classmethod
    def _switches(cls, value: Any) -> Any:
        # checked here so that an error names the field, not a branch of the union
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, dict):
            for name, state in value.items():
                if not isinstance(state, bool):
                    raise ValueError(f"switch {str(name)!r} must be true or false")
            return value
        raise ValueError("must be an object of switch states ({\"sw1\": true}) or true / false")

    @model_validator(mode="after")
    def _measures_something(self) -> "TelemetryPayload":
        if self.power_w is None and self.energy_wh_total is None and self.switch_state is None:
            raise ValueError("a telemetry document needs power_w, energy_wh_total or switch_state")
        return self

    @property
    def ts(self) -> int:
        """Device time, UTC epoch seconds (whole seconds)."""
        return timeutil.to_epoch(self.timestamp)


@dataclass(frozen=True)
class PayloadError:
    """Why a document is not a valid telemetry document.

    ``index``: its position in what was received; ``field``: the first offending
    field (dotted where nested, e.g. ``energy_wh_total``), or None for the document as a whole;
    ``errors``: every problem as ``{"loc", "msg", "type"}`` (never the input value).
    """

    index: int
    message: str
    field: str | None
    errors: tuple[dict, ...]


def _describe(exc: ValidationError) -> tuple[str, str | None, tuple[dict, ...]]:
    errors = tuple({"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
                    "type": str(e.get("type", ""))} for e in exc.errors())
    first = errors[0] if errors else {"loc": [], "msg": "invalid document"}
    field = ".".join(first["loc"]) or None
    message = f"field {field!r}: {first['msg']}" if field else first["msg"]
    return message, field, errors


def parse_document(doc: Any, index: int = 0) -> TelemetryPayload | PayloadError:
    """A received document (a mapping, or JSON text / bytes) as a payload, or why not."""
    if isinstance(doc, (bytes, bytearray, str)):
        try:
            doc = json.loads(doc)
        except (ValueError, UnicodeDecodeError) as exc:
            return PayloadError(index, f"not JSON: {exc}", None, ({"loc": [], "msg": "not JSON", "type": "json"},))
    if not isinstance(doc, dict):
        return PayloadError(index, "a telemetry document must be a JSON object", None,
                            ({"loc": [], "msg": "expected an object", "type": "object_type"},))
    try:
        return TelemetryPayload.model_validate(doc)
    except ValidationError as exc:
        message, field, errors = _describe(exc)
        return PayloadError(index, message, field, errors)


def parse_documents(docs: Sequence[Any]) -> tuple[list[TelemetryPayload], list[PayloadError]]:
    """Every document parsed: the valid payloads (in order) and the errors of the others."""
    payloads: list[TelemetryPayload] = []
    errors: list[PayloadError] = []
    for i, doc in enumerate(docs):
        got = parse_document(doc, i)
        (errors if isinstance(got, PayloadError) else payloads).append(got)
    return payloads, errors

"""The Fronius push document (``POST /api/push/fronius``): validation and mapping.

Pure functions, no I/O. The contract is ``vendor-fixtures/fronius-push/CONTRACT.md``
(LiveOne's specification of the endpoint): one JSON document per reading, powers in
**W** (integers), interval energies in **Wh**, ``batterySOC`` in %, ``timestamp`` an
ISO-8601 UTC instant. ``null`` (or an absent field) means *not measured*; ``0`` is a
measured zero, so a null never becomes a reading and a 0 always does.

Mapping (canonical units, :mod:`.points`): W -> kW (/1000), Wh -> kWh (/1000), % as is.
``solar_w`` is ``solarW``, or ``solarLocalW + solarRemoteW`` when ``solarW`` is null and
both parts are given. Signs: grid + = import as in the contract; the contract's battery + = charging is
flipped to Wattline's + = discharging.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..models import VendorRecord
from .points import PUSH_POINTS

SOURCE = "fronius-push"

# W or Wh: a finite number or null (integers per the contract; floats accepted, booleans
# and numeric strings refused: strict mode)
Number = float | None


class PushError(ValueError):
    """A push document that does not fit the contract; ``problems`` name each field."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{p['field']}: {p['msg']}" for p in problems))
        self.problems = problems


def _instant(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an ISO-8601 string")
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} is not an ISO-8601 instant") from None
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{name} has no UTC offset")
    return dt.astimezone(timezone.utc)


class FroniusPush(BaseModel):
    """One push document. Unknown fields are refused (nothing is silently dropped)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, hide_input_in_errors=True)

    siteId: str = Field(min_length=1, max_length=100)
    apiKey: str = Field(min_length=1, max_length=500)
    timestamp: datetime
    sequence: str = Field(min_length=1, max_length=200)
    solarW: Number = None
    solarLocalW: Number = None
    solarRemoteW: Number = None
    loadW: Number = Field(default=None, ge=0)
    batteryW: Number = None
    gridW: Number = None
    batterySOC: float | None = Field(default=None, ge=0, le=100)
    faultCode: str | int | None = None
    faultTimestamp: datetime | None = None
    generatorStatus: int | None = None
    solarWhInterval: Number = Field(default=None, ge=0)
    loadWhInterval: Number = Field(default=None, ge=0)
    batteryInWhInterval: Number = Field(default=None, ge=0)
    batteryOutWhInterval: Number = Field(default=None, ge=0)
    gridInWhInterval: Number = Field(default=None, ge=0)
    gridOutWhInterval: Number = Field(default=None, ge=0)

    @field_validator("timestamp", "faultTimestamp", mode="before")
    @classmethod
    def _utc(cls, value: Any, info) -> Any:
        return None if value is None else _instant(value, info.field_name)

    @field_validator("siteId", "apiKey", "sequence")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is blank")
        return value

    @property
    def ts(self) -> int:
        """The reading's instant, UTC epoch seconds (sub-second part dropped)."""
        return int(math.floor(self.timestamp.timestamp()))


def parse_push(body: Any) -> FroniusPush:
    """``body`` (decoded JSON) as a :class:`FroniusPush`; :class:`PushError` otherwise.

    The problems name fields and rules, never the values (``apiKey`` is a secret).
    """
    if not isinstance(body, dict):
        raise PushError([{"field": "body", "msg": "must be a JSON object"}])
    try:
        return FroniusPush.model_validate(body)
    except ValidationError as exc:
        problems = []
        for e in exc.errors(include_input=False, include_url=False):
            field = ".".join(str(p) for p in e.get("loc", ())) or "body"
            problems.append({"field": field, "msg": str(e.get("msg", "invalid")).removeprefix("Value error, ")})
        raise PushError(problems) from None


def raw_payload(body: dict) -> dict:
    """The document as it is kept (the raw event): everything but the ``apiKey``."""
    return {k: v for k, v in body.items() if k != "apiKey"}


def _scaled(value: float, factor: float) -> float:
    """``value * factor`` rounded to 1e-9 (so -700 W is -0.7 kW, not -0.7000000000000001)."""
    return round(float(value) * factor, 9) + 0.0


def push_values(push: FroniusPush) -> dict[str, float]:
    """Point key -> value in the canonical unit, for every measured (non-null) field."""
    values: dict[str, float] = {}
    for spec in PUSH_POINTS:
        v = getattr(push, spec.vendor_field)
        if v is not None:
            values[spec.key] = _scaled(v, spec.factor)
    if "battery_w" in values:  # the contract's + charging -> Wattline's + discharging
        values["battery_w"] = -values["battery_w"] + 0.0
    if push.solarW is None and push.solarLocalW is not None and push.solarRemoteW is not None:
        values["solar_w"] = _scaled(push.solarLocalW + push.solarRemoteW, 1e-3)
    return values


def push_record(push: FroniusPush, body: dict) -> VendorRecord:
    """The push as one normalized record (raw = the body without its key)."""
    return VendorRecord(ts=push.ts, values=push_values(push), raw=raw_payload(body))

"""Response models of the campus analytics API (``/api/power-analytics/summary``,
``timeline``, ``device-breakdown``, ``monthly``, ``classrooms``).

Every figure comes twice: in kWh / currency units for people (``energy_kwh``,
``cost``) and as the exact integers the sums are made of (``energy_milli_wh``,
``cost_micro``), so a client can check that cards and charts agree to the unit.
``cost`` is null when no cost version prices any of the energy (or there is none).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from wattline.domain import campus as C
from wattline.domain.campus import Figures


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Quality(_Model):
    """How much of an energy figure is measured with high confidence."""

    high_confidence_pct: float | None = Field(
        description="percent of the energy from entries without a gap or power integration; null without energy")
    estimated_kwh: float = Field(description="energy not of high confidence, kWh")
    estimated_milli_wh: int = Field(description="the same, milli-Wh (exact)")
    estimated: bool = Field(description=f"high_confidence_pct below {C.ESTIMATED_BELOW_PCT}: show as estimated")
    flags: list[str] = Field(description="quality flags of the underlying entries (gap, estimated, reset...)")


def quality(f: Figures) -> Quality:
    return Quality(high_confidence_pct=f.high_confidence_pct, estimated_kwh=C.kwh(f.estimated_milli_wh),
                   estimated_milli_wh=f.estimated_milli_wh, estimated=f.estimated, flags=C.flag_names(f))


class _Amounts(_Model):
    energy_kwh: float = Field(description="kWh (exactly energy_milli_wh / 10**6)")
    energy_milli_wh: int
    cost: float | None = Field(description="currency units (exactly cost_micro / 10**6); null: none of the energy "
                                            "is priced by a cost version")
    cost_micro: int | None
    unpriced_milli_wh: int = Field(description="energy no cost version prices, milli-Wh")
    on_time_sec: int = Field(description="seconds with the switch on, summed over devices")


def amounts(f: Figures) -> dict:
    cost = f.shown_cost_micro
    return {"energy_kwh": C.kwh(f.energy_milli_wh), "energy_milli_wh": f.energy_milli_wh, "cost": C.money(cost),
            "cost_micro": cost, "unpriced_milli_wh": f.unpriced_milli_wh, "on_time_sec": f.on_time_s}


class ClassroomSummary(_Amounts):
    """One classroom's local day."""

    classroom: str
    date: str = Field(description="local date YYYY-MM-DD")
    timezone: str
    currency: str
    devices: int = Field(description="devices registered in the classroom")
    quality: Quality


class TimelineBucket(_Amounts):
    start: str = Field(description="ISO-8601 in the classroom's zone")
    end: str
    quality: Quality


class Timeline(_Amounts):
    """Buckets of a classroom over a range, and their total."""

    classroom: str
    timezone: str
    currency: str
    bucket_minutes: int
    start: str
    end: str
    buckets: list[TimelineBucket]
    quality: Quality


class DeviceFigures(_Amounts):
    esp32_name: str
    device_id: str
    quality: Quality


class DeviceBreakdown(_Model):
    """Each device of a classroom over a local day."""

    classroom: str
    date: str
    timezone: str
    currency: str
    devices: list[DeviceFigures]


class MonthDay(_Amounts):
    date: str
    quality: Quality


class Monthly(_Amounts):
    """A classroom's local month and its days."""

    classroom: str
    year: int
    month: int
    timezone: str
    currency: str
    days: list[MonthDay]
    quality: Quality


class ClassroomInfo(_Model):
    name: str
    timezone: str
    devices: int


class ClassroomList(_Model):
    classrooms: list[ClassroomInfo]

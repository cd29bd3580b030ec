"""Response models of the REST API: what ``/docs`` documents and every route returns.

Field names are the JSON names the API has always used (seed 000's camelCase for the
telemetry endpoints, snake_case for the summaries). ``extra="forbid"``: a route that
returns a field its model does not declare fails loudly instead of documenting less
than it sends.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------ errors


class ErrorBody(_Model):
    """Every 4xx/5xx answer of the API."""

    error: str = Field(description="human-readable message")
    code: str = Field(description="machine-readable code, e.g. not_found, invalid_parameter")
    details: dict[str, Any] | None = Field(description="what the error is about (parameter, id...)")


_ERROR_TEXT = {
    400: "Invalid parameter or request (code invalid_parameter / invalid_request / not_syncable)",
    401: "Authentication required or credential not accepted",
    403: "The caller's role does not allow this",
    404: "No such resource",
    409: "Conflicts with work already running",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting the error shape for ``statuses``."""
    return {s: {"model": ErrorBody, "description": _ERROR_TEXT[s]} for s in statuses}


# ------------------------------------------------------------------ plants and work orders

Health = Literal["green", "yellow", "red"]


CostNote = Literal["no_cost_version", "partly_unpriced", "mixed_currency"]
_COST_NOTES = ("no_cost_version: no cost version prices it (the cost is null, never 0); partly_unpriced: some "
               "energy has no version (the cost covers the rest); mixed_currency: priced in several currencies "
               "(null)")


class SummaryCostQuality(_Model):
    """Cost quality of each summary period (the notes of ``CostNote``; empty: fully priced)."""

    daily: list[CostNote]
    monthly: list[CostNote]
    yearly: list[CostNote]
    total: list[CostNote]


def _cost(what: str) -> Any:
    return Field(description=f"cost of {what}, currency units (exact to the micro-unit); null when not priced")


def _micro(what: str) -> Any:
    return Field(description=f"cost of {what} in integer micro-units of the currency, as it is summed")


class Summary(_Model):
    """Current-period snapshot of a plant or a work order, with the cost of each energy
    (priced on read from the same ledger entries; a work order's is the sum of its
    plants', each in its own zone, as its energies are)."""

    daily_energy_kwh: float | None
    monthly_energy_mwh: float | None
    yearly_energy_mwh: float | None
    total_energy_mwh: float | None
    current_power_kw: float | None
    last_update_time: str | None = Field(description="ISO-8601 UTC of the newest reading")
    updated_at: str | None
    quality: list[str]
    daily_cost: float | None = _cost("today (the day of daily_energy_kwh)")
    daily_cost_micro: int | None = _micro("today")
    monthly_cost: float | None = _cost("this month")
    monthly_cost_micro: int | None = _micro("this month")
    yearly_cost: float | None = _cost("this year")
    yearly_cost_micro: int | None = _micro("this year")
    total_cost: float | None = _cost("every ledger entry (lifetime; the counter's energy from before the "
                                     "first reading has no ledger entry and no cost)")
    total_cost_micro: int | None = _micro("the lifetime")
    currency: str | None = Field(description="ISO 4217 of the costs; null when none is priced")
    cost_quality: SummaryCostQuality = Field(description=_COST_NOTES)


class PlantCard(_Model):
    id: int
    name: str
    vendor: str | None
    vendorPlantId: str | None
    timezone: str
    summary: Summary | None
    health: Health = Field(description="green: data within 2 expected intervals, yellow: 4, red: older or none")


class LatestValue(_Model):
    """The newest reading of one point."""

    seriesId: int
    ts: str = Field(description="ISO-8601 UTC")
    value: float = Field(description="in the point's canonical unit")


class PlantDetail(PlantCard):
    workOrders: list[int]
    latest: dict[str, LatestValue] = Field(description="newest reading per point key")


class PlantList(_Model):
    plants: list[PlantCard]


class WorkOrderItem(_Model):
    id: int
    name: str
    plantIds: list[int]
    summary: Summary | None


class WorkOrderList(_Model):
    workOrders: list[WorkOrderItem]


class DailyBar(_Model):
    date: str = Field(description="local date, YYYY-MM-DD")
    start: str
    end: str
    energy_kwh: float
    quality: list[str]
    cost: float | None = Field(description="the day's cost, currency units; null when no cost version prices it")
    cost_micro: int | None = Field(description="the day's cost in integer micro-units of the currency")
    currency: str | None = Field(description="ISO 4217")
    cost_quality: list[CostNote] = Field(description=_COST_NOTES)


class WorkOrderBar(_Model):
    date: str = Field(description="local date of the work order's zone, YYYY-MM-DD")
    start: str = Field(description="the day's first instant, ISO-8601 in the work order's zone")
    end: str = Field(description="the next day's first instant, ISO-8601 in the work order's zone")
    energy_kwh: float
    quality: list[str]
    cost: float | None = Field(description="the day's cost, currency units; null when no cost version prices it")
    cost_micro: int | None = Field(description="the day's cost in integer micro-units of the currency")
    currency: str | None = Field(description="ISO 4217")
    cost_quality: list[CostNote] = Field(description=_COST_NOTES)


class WorkOrderDetail(_Model):
    id: int
    name: str
    timezone: str = Field(description="the work order's zone (its own, else its organization's): its daily bars are days of this zone")
    plants: list[PlantCard]
    summary: Summary | None
    dailyBars: list[WorkOrderBar]


class SyncLog(_Model):
    id: int
    vendor_id: int | None
    plant_id: int | None
    sync_type: str
    status: str
    error_message: str | None
    records_processed: int
    started_at: str | None
    completed_at: str | None
    metadata: dict[str, Any] | None
    duration_ms: float | None


class SyncLogList(_Model):
    logs: list[SyncLog]


class EnergyBucketOut(_Model):
    start: str
    end: str
    energy_kwh: float
    quality: list[str]


class EnergyReport(_Model):
    """``wattline energy --format json``."""

    asset: str
    point: str
    period: str
    timezone: str
    buckets: list[EnergyBucketOut]
    total_kwh: float


# ------------------------------------------------------------------ telemetry and charts


class TelemetryRow(_Model):
    ts: str
    total_energy_mwh: float | None
    power_kw: float | None
    raw: dict[str, Any] = Field(description="the vendor payload the reading came from")


class Telemetry(_Model):
    plantId: int
    data: list[TelemetryRow]
    period: str
    recordCount: int


class EnergyPoint(_Model):
    ts: str
    total_energy_mwh: float


class EnergyChart(_Model):
    plantId: int
    timezone: str
    unit: Literal["MWh"]
    days: int
    points: list[EnergyPoint]


class PowerPoint(_Model):
    ts: str
    power_kw: float


class PowerChart(_Model):
    plantId: int
    timezone: str
    unit: Literal["kW"]
    hours: int
    points: list[PowerPoint]


class DailyChart(_Model):
    plantId: int
    timezone: str
    unit: Literal["kWh"]
    days: int
    bars: list[DailyBar]


class LatestValues(_Model):
    plantId: int
    values: dict[str, LatestValue] = Field(description="newest reading per point key")


# ------------------------------------------------------------------ jobs

JobStatus = Literal["queued", "running", "succeeded", "failed"]


class JobAccepted(_Model):
    jobId: str
    jobUrl: str
    status: Literal["queued"]
    deferred: bool = False  # true: queued on the job engine (WATTLINE_JOBS_URL), run by a worker
    engineJobId: int | None = None


class Job(_Model):
    id: str
    kind: str
    status: JobStatus
    params: dict[str, Any] | None
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None
    createdAt: str | None
    updatedAt: str | None


class JobList(_Model):
    jobs: list[Job]


# ------------------------------------------------------------------ health


class DatabaseCheck(_Model):
    status: Literal["ok", "error"]
    dialect: str | None = None
    error: str | None = None


class HealthReport(_Model):
    status: Literal["ok", "degraded"]
    databases: dict[str, DatabaseCheck]


# ------------------------------------------------------------------ cost


class PricedEnergyBucketOut(EnergyBucketOut):
    """A bucket of ``GET /api/energy`` with its cost, priced on read."""

    cost: float | None = Field(description="currency units (exact to the micro-unit); null when no cost version prices it")
    cost_micro: int | None = Field(description="the cost in integer micro-units of the currency, as it is summed")
    currency: str | None = Field(description="ISO 4217")
    cost_quality: list[CostNote] = Field(description="no_cost_version: nothing priced; partly_unpriced: some energy "
                                                     "has no version (the cost covers the rest); mixed_currency")


class PricedEnergyReport(_Model):
    """``wattline energy --format json``: energy and cost per bucket and in total."""

    asset: str
    point: str
    period: str
    timezone: str
    buckets: list[PricedEnergyBucketOut]
    total_kwh: float
    total_cost: float | None = Field(description="sum of the buckets' costs, currency units")
    total_cost_micro: int | None
    currency: str | None
    cost_quality: list[CostNote]


Scope = Literal["global", "organization", "group", "asset"]


class CostVersionOut(_Model):
    id: int
    cost_per_kwh: str = Field(description="currency units per kWh, exact decimal text (\"7.50\")")
    cost_per_kwh_micro: int = Field(description="micro-units of the currency per kWh")
    currency: str = Field(description="ISO 4217")
    effective_from: str = Field(description="ISO-8601 UTC: the first instant it prices")
    scope: Scope
    scope_id: int | None = Field(description="the organization, group or asset id; null for global")
    scope_name: str | None
    notes: str | None
    created_by: str | None
    created_at: str | None


class CostVersionCreated(CostVersionOut):
    created: bool = Field(description="false: the same version was already stored (nothing changed)")
    repricing: Literal["on_read"] = Field(
        description="costs are priced from the ledger when read: every figure the version covers reflects it "
                    "at once, with no recalculation job")


class CostVersionList(_Model):
    versions: list[CostVersionOut]
# ------------------------------------------------------------------ campus devices


class TelemetryIngestResult(_Model):
    """What became of the telemetry documents of one POST, per document."""

    documents: int = Field(description="documents received")
    accepted: int = Field(description="taken into the ledger")
    repeats: int = Field(description="delivered before (same content, or same device, sequence number and uptime): nothing changed")
    quarantined: int = Field(description="kept out of the ledger with the reason (implausible value, device clock far ahead)")
    unknown_device: int = Field(description="from a device not registered: kept, replayed once it is registered")
    classroom_mismatches: int = Field(description="naming another classroom than the registry's (the registry's is used)")
    clock_drift: int = Field(0, description="taken in, with the device clock ahead of the arrival by more than 120 s")
    out_of_order: int = Field(0, description="taken in, older than their device's newest reading (the ledger re-derives around them)")

"""Response models of the controller-status routes of ``/api/power-analytics``: status
and heartbeat posts, the campus health report (seed 004's shape) and the device views."""

from __future__ import annotations

from pydantic import Field

from wattline.api.schemas import _Model


class StatusIngestResult(_Model):
    """What became of the status or heartbeat documents of one POST."""

    documents: int = Field(description="documents received")
    statuses: int = Field(description="valid status documents taken in")
    heartbeats: int = Field(description="valid heartbeat documents taken in")
    status_changes: int = Field(description="changes of status added to the controllers' history")


class HealthTelemetry(_Model):
    total_events: int = Field(description="raw events of device telemetry (MQTT, HTTP), whole telemetry database")
    unprocessed_events: int = Field(description="the organization's messages kept out of the ledger, not replayed")
    events_last_hour: int = Field(description="telemetry raw events that arrived in the last hour")
    online_devices: int = Field(description="registered devices whose controller is online (status and heartbeats)")
    online_controllers: int
    offline_controllers: int = Field(description="controllers heard of that are not online now")
    unprocessed_by_kind: dict[str, int] = Field(description="unprocessed events by kind: unknown_device, future, invalid")


class HealthLedger(_Model):
    events_processed: int = Field(description="telemetry events not kept out of the ledger")
    entries_created: int = Field(description="ledger entries of the organization's devices")
    resets_detected: int = Field(description="ledger entries flagged as a counter reset")
    errors: int = Field(description="invalid messages kept with their reason")
    is_processing: bool = Field(description="a job is queued or running")


class HealthRun(_Model):
    last_run: str | None = Field(description="ISO-8601 UTC, null if never")
    last_run_id: str | None = Field(description="the job's id (null for the pipeline's own aggregation at ingest)")
    last_status: str | None
    kind: str | None = Field(description="job kind, or 'ingest' for aggregation at ingest")


class CampusHealth(_Model):
    """Seed 004's health report, for the caller's organization."""

    status: str = Field(description="healthy | degraded (unprocessed backlog of 100 or more)")
    telemetry: HealthTelemetry
    ledger: HealthLedger
    aggregation: HealthRun
    reconciliation: HealthRun
    timestamp: str = Field(description="when the report was made, ISO-8601 UTC")


class ControllerNow(_Model):
    online: bool = Field(description="status not offline and a heartbeat or telemetry within 3 × 30 s")
    announced: str | None = Field(description="the last status the controller announced (online/offline)")
    announced_at: str | None = Field(description="arrival of the newest status message")
    last_seen: str | None = Field(description="newest heartbeat or telemetry arrival")
    last_heartbeat_at: str | None
    last_telemetry_at: str | None
    firmware_ver: str | None = Field(description="from the last heartbeat")
    wifi_rssi: float | None = Field(description="dBm, from the last heartbeat")
    uptime_seconds: int | None


class StatusChange(_Model):
    ts: str
    status: str


class OfflineSpell(_Model):
    start: str
    end: str | None = Field(description="null: still offline")
    duration_s: int | None


class DeviceDay(_Model):
    date: str = Field(description="local date of the device's classroom zone")
    start: str
    end: str
    energy_kwh: float | None = Field(description="null: no ledger entry that day")
    on_time_sec: int | None
    estimated_kwh: float | None = Field(description="energy from low-confidence entries (gaps, low confidence)")
    ledger_entries: int


class DeviceOverview(_Model):
    esp32_name: str
    device_id: str
    classroom: str
    timezone: str
    energy_method: str
    switch: str | None
    status: ControllerNow
    history: list[StatusChange] = Field(description="changes of announced status, oldest first")
    offline_spells: list[OfflineSpell]
    days: list[DeviceDay]
    energy_kwh: float = Field(description="sum of the days shown")


class DeviceListItem(_Model):
    esp32_name: str
    device_id: str
    classroom: str
    online: bool
    announced: str | None
    last_seen: str | None
    firmware_ver: str | None
    wifi_rssi: float | None


class DeviceList(_Model):
    devices: list[DeviceListItem]
    online: int
    offline: int

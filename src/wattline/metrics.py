"""Prometheus metrics (served at ``/metrics``): what flows through the pipeline and
the vendor calls, so an operator sees ingest rates, rejects and failures."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

READINGS_INGESTED = Counter("wattline_readings_ingested_total", "Readings written by the pipeline", ["source"])
READINGS_QUARANTINED = Counter("wattline_readings_quarantined_total", "Readings quarantined (not used)",
                               ["source"])
LATE_READINGS = Counter("wattline_late_readings_total", "Readings older than their series' newest one",
                        ["source"])
INGEST_SECONDS = Histogram("wattline_ingest_seconds", "Time to ingest one batch", ["source"],
                           buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
VENDOR_CALLS = Counter("wattline_vendor_calls_total", "Vendor API calls", ["vendor_id", "outcome"])
REJECTED_RECORDS = Counter("wattline_vendor_records_rejected_total", "Corrupted vendor records skipped",
                           ["vendor_id"])
JOB_RUNS = Counter("wattline_job_runs_total", "Job runs", ["kind", "status"])
LATEST_FALLBACK_READS = Counter(
    "wattline_latest_values_fallback_total",
    "Latest-value reads the database answered instead of Redis (unavailable: Redis down; missing: not in Redis)",
    ["reason"])
LATEST_REDIS_ERRORS = Counter("wattline_latest_values_redis_errors_total",
                              "Failed Redis calls of the latest-value store (reads fall back, writes are kept)",
                              ["operation"])
# campus devices: every telemetry message by what became of it (accepted, repeats,
# quarantined, unknown_device: kept until the device is registered, invalid: not a
# valid document, kept with the reason)
DEVICE_MESSAGES = Counter("wattline_device_messages_total", "Device telemetry messages by outcome",
                          ["source", "outcome"])
DEVICE_CLASSROOM_MISMATCHES = Counter(
    "wattline_device_classroom_mismatches_total",
    "Device messages naming another classroom than the registry's (the registry's is used)", ["source"])
DEVICE_QUALITY = Counter("wattline_device_quality_total",
                         "Device messages taken in with a quality finding (clock_drift, out_of_order)",
                         ["source", "check"])
DEVICE_MESSAGES_REPLAYED = Counter("wattline_device_messages_replayed_total",
                                   "Kept messages of a device replayed into the ledger once it was registered")
MQTT_DEVICE_MESSAGES = Counter("wattline_mqtt_device_messages_total",
                               "MQTT messages received by the ingester, by topic kind", ["kind"])
# controller status (status and heartbeat topics, HTTP status/heartbeat posts) and the
# controllers online/offline now (domain.controller_status.is_online), set at each scrape
CONTROLLER_MESSAGES = Counter("wattline_controller_messages_total",
                              "Controller status and heartbeat messages by outcome (accepted, invalid)",
                              ["source", "kind", "outcome"])
CONTROLLERS = Gauge("wattline_controllers", "Controllers by state (online, offline) at the last scrape", ["state"])
DEVICES_AUTO_REGISTERED = Counter("wattline_devices_auto_registered_total",
                                  "Unknown devices registered on their first message (organization setting)")
ENGINE_JOBS = Gauge("wattline_engine_jobs", "Jobs of the job engine's queue by status at the last scrape "
                    "(WATTLINE_JOBS_URL; failed: ended after their retries)", ["status"])

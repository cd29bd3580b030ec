"""The campus health report (seed 004's ``GET /api/power-analytics/health``) and a
device's overview for its page: plain reads of the telemetry and main databases.

Definitions (all counts since the databases were created):

* ``telemetry.total_events``: raw events of device telemetry (sources
  :data:`TELEMETRY_SOURCES`: MQTT and HTTP; status and heartbeat messages are kept
  apart as ``<source>:status`` / ``<source>:heartbeat``), of the whole telemetry
  database (a raw event has no organization); ``events_last_hour``: of those, arrived
  in the last hour; ``unprocessed_events``: the organization's messages kept out of the
  ledger and not replayed (unknown device, clock far ahead, invalid), by kind in
  ``unprocessed_by_kind``.
* ``online_devices``: registered devices whose controller is online by the rule of
  ``domain.controller_status`` (status not offline, heard within 3 heartbeats);
  ``online_controllers`` / ``offline_controllers``: controllers heard of at all.
* ``ledger.entries_created``: ledger entries of the organization's devices;
  ``resets_detected``: those flagged as a counter reset (``Flag.RESET``);
  ``events_processed``: telemetry events not kept out (total − unprocessed telemetry);
  ``errors``: invalid messages kept with their reason; ``is_processing``: a job queued
  or running.
* ``aggregation``: aggregates are written by the pipeline with every ingest, so
  ``last_run`` is the newest of the last re-aggregating job (kinds
  :data:`AGGREGATION_KINDS`) and the last telemetry arrival; ``reconciliation``: the
  newest ``reconcile`` job, if any ran.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from wattline import clock
from wattline.domain import timeutil
from wattline.jobs.controller_status import controller_states
from wattline.store import device_health_repo as repo
from wattline.store import device_registry
from wattline.store.engines import DbEngine

TELEMETRY_SOURCES = ("mqtt", "http")
AGGREGATION_KINDS = ("aggregate", "reaggregate", "recalculate", "backfill", "sync-all")
RECONCILIATION_KINDS = ("reconcile",)
UNPROCESSED_BACKLOG = 100  # seed 004: "unprocessed events count (should be < 100)"


def _iso(ts: int | None) -> str | None:
    return None if ts is None else timeutil.iso(ts)


def _job(row: dict | None) -> dict[str, Any]:
    if row is None:
        return {"last_run": None, "last_run_id": None, "last_status": None, "kind": None}
    return {"last_run": _iso(repo.as_epoch(row["updated_at"])), "last_run_id": row["id"],
            "last_status": row["status"], "kind": row["kind"]}


def health_report(telemetry: DbEngine, main_reader: DbEngine, organization_id: int, *,
                  now: int | None = None) -> dict[str, Any]:
    """The report as a JSON-ready dict (see the module docstring)."""
    at = clock.now_s() if now is None else int(now)
    with main_reader.connect() as conn:
        series = repo.device_series(conn, organization_id)
        devs = device_registry.list_devices(conn, organization_id)
    states = controller_states(telemetry, organization_id, now=at)
    with telemetry.connect() as conn:
        total, last_hour = repo.raw_event_counts(conn, TELEMETRY_SOURCES, at - 3600)
        kept = repo.kept_counts(conn, organization_id)
        kept_telemetry = repo.kept_of_sources(conn, organization_id, TELEMETRY_SOURCES)
        entries, resets = repo.ledger_counts(conn, list(series.values()))
        agg_job = repo.newest_job(conn, AGGREGATION_KINDS)
        rec_job = repo.newest_job(conn, RECONCILIATION_KINDS)
        running = repo.jobs_running(conn)
        newest = repo.newest_raw_event(conn, TELEMETRY_SOURCES)
    unprocessed = sum(kept.values())
    online_controllers = sum(1 for s in states.values() if s.online)
    online_devices = sum(1 for d in devs if d["esp32_name"] in states and states[d["esp32_name"]].online)
    aggregation = _job(agg_job)
    job_ts = repo.as_epoch(agg_job["updated_at"]) if agg_job else None
    if newest is not None and (job_ts is None or newest > job_ts):
        aggregation = {**aggregation, "last_run": _iso(newest), "last_run_id": None, "kind": "ingest",
                       "last_status": "succeeded"}
    return {
        "status": "healthy" if unprocessed < UNPROCESSED_BACKLOG else "degraded",
        "telemetry": {"total_events": total, "unprocessed_events": unprocessed, "events_last_hour": last_hour,
                      "online_devices": online_devices, "online_controllers": online_controllers,
                      "offline_controllers": len(states) - online_controllers, "unprocessed_by_kind": kept},
        "ledger": {"events_processed": max(0, total - kept_telemetry), "entries_created": entries,
                   "resets_detected": resets, "errors": kept.get("invalid", 0), "is_processing": running > 0},
        "aggregation": aggregation,
        "reconciliation": _job(rec_job),
        "timestamp": datetime.fromtimestamp(at, timezone.utc).isoformat().replace("+00:00", "Z"),
    }


class DeviceNotFound(LookupError):
    pass


def device_overview(telemetry: DbEngine, main_reader: DbEngine, organization_id: int, esp32_name: str,
                    device_id: str, *, days: int = 31, now: int | None = None) -> dict[str, Any]:
    """A device for its page: its controller's state now (online by the rule, last seen,
    firmware and rssi of the last heartbeat), the status history and its offline spells,
    and its energy per local day for the last ``days`` days (stored day buckets: shown
    also while the device is offline). Energy in kWh; times ISO-8601 UTC."""
    from wattline.domain.controller_status import offline_spells
    from wattline.jobs.controller_status import history

    at = clock.now_s() if now is None else int(now)
    with main_reader.connect() as conn:
        dev = device_registry.device(conn, organization_id, esp32_name, device_id)
    if dev is None:
        raise DeviceNotFound(f"unknown device {esp32_name}/{device_id}")
    tz = dev["timezone"]
    state = controller_states(telemetry, organization_id, [esp32_name], now=at).get(esp32_name)
    events = history(telemetry, organization_id, esp32_name)
    series = dev["series"].get("energy_total") or dev["series"].get("power")
    today = timeutil.local_date(at, tz)
    first = timeutil.day_bounds(date.fromordinal(today.toordinal() - (days - 1)), tz)[0]
    end = timeutil.day_bounds(today, tz)[1]
    rows = []
    if series is not None:
        with telemetry.connect() as conn:
            rows = repo.daily_energy(conn, series, first, end)
    by_start = {r["bucket_start"]: r for r in rows}
    out_days = []
    for k in range(days):
        d = date.fromordinal(today.toordinal() - (days - 1) + k)
        start, stop = timeutil.day_bounds(d, tz)
        r = by_start.get(start)
        energy = r["energy_milli_wh"] if r else None
        hc = r["hc_energy_milli_wh"] if r else None
        out_days.append({
            "date": d.isoformat(), "start": timeutil.iso(start), "end": timeutil.iso(stop),
            "energy_kwh": None if energy is None else energy / 1e6,
            "on_time_sec": r["on_time_s"] if r else None,
            "estimated_kwh": None if energy is None or hc is None else (energy - hc) / 1e6,
            "ledger_entries": r["ledger_count"] if r else 0})
    details = state.details if state else {}
    return {
        "esp32_name": esp32_name, "device_id": device_id, "classroom": dev["classroom"], "timezone": tz,
        "energy_method": dev["energy_method"], "switch": dev["switch_id"],
        "status": {
            "online": bool(state and state.online), "announced": state.status if state else None,
            "announced_at": _iso(state.status_at) if state else None,
            "last_seen": _iso(state.last_seen) if state else None,
            "last_heartbeat_at": _iso(state.last_heartbeat_at) if state else None,
            "last_telemetry_at": _iso(state.last_telemetry_at) if state else None,
            "firmware_ver": details.get("firmware_ver"), "wifi_rssi": details.get("wifi_rssi"),
            "uptime_seconds": details.get("uptime_seconds")},
        "history": [{"ts": timeutil.iso(e.ts), "status": e.status} for e in events],
        "offline_spells": [{"start": timeutil.iso(s.start), "end": _iso(s.end), "duration_s": s.duration_s}
                           for s in offline_spells(events)],
        "days": out_days,
        "energy_kwh": sum(d["energy_kwh"] or 0 for d in out_days),
    }


def devices_overview(telemetry: DbEngine, main_reader: DbEngine, organization_id: int, *,
                     now: int | None = None) -> list[dict[str, Any]]:
    """Every device of the organization with its controller's state now, by controller and id."""
    at = clock.now_s() if now is None else int(now)
    with main_reader.connect() as conn:
        devs = device_registry.list_devices(conn, organization_id)
    states = controller_states(telemetry, organization_id, now=at)
    out = []
    for d in devs:
        s = states.get(d["esp32_name"])
        out.append({"esp32_name": d["esp32_name"], "device_id": d["device_id"], "classroom": d["classroom"],
                    "online": bool(s and s.online), "announced": s.status if s else None,
                    "last_seen": _iso(s.last_seen) if s else None,
                    "firmware_ver": (s.details if s else {}).get("firmware_ver"),
                    "wifi_rssi": (s.details if s else {}).get("wifi_rssi")})
    return out

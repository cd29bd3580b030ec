"""Controller status flows: received status and heartbeat messages parsed
(``sources.devices.status``) and written by the status stage
(``pipeline.device_status``); and the state of an organization's controllers now,
online or not (``domain.controller_status.is_online``), for the API, the dashboard and
``/metrics``.

The MQTT ingester calls :func:`record_messages` with the topic's controller; the HTTP
routes validate first (a 400 changes nothing) and call :func:`record_valid`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from wattline import clock, logs
from wattline.domain import controller_status as rules
from wattline.pipeline.device_status import DeviceStatusStage, ReceivedSignal, StatusResult
from wattline.sources.devices.status import parse_signal
from wattline.store import controller_status_repo
from wattline.store.engines import DbEngine

log = logs.get("wattline.devices")


@dataclass(frozen=True)
class Received:
    """One message as it arrived: payload, kind (status | heartbeat), the controller the
    topic names (None over HTTP), arrival (epoch s)."""

    payload: Any
    kind: str
    esp32_name: str | None
    received_at: int


def record_messages(telemetry: DbEngine, organization_id: int, messages: Sequence[Received], *,
                    source: str) -> StatusResult:
    """Parse and record messages; an invalid one is kept with its reason, never raised."""
    out = []
    for m in messages:
        got = parse_signal(m.payload, m.kind, m.esp32_name)
        if isinstance(got, rules.ControllerSignal):
            out.append(ReceivedSignal(m.payload, m.received_at, m.kind, signal=got, esp32_name=got.esp32_name))
        else:
            out.append(ReceivedSignal(m.payload, m.received_at, m.kind, reason=got.message, esp32_name=m.esp32_name))
    return DeviceStatusStage(telemetry).record(out, organization_id, source)


def record_valid(telemetry: DbEngine, organization_id: int, kind: str, signals: Sequence[rules.ControllerSignal],
                 raws: Sequence[Any], *, source: str, now: int | None = None) -> StatusResult:
    """Signals validated by the caller (``raws[i]``: signal ``i`` as it arrived)."""
    at = clock.now_s() if now is None else int(now)
    return DeviceStatusStage(telemetry).record(
        [ReceivedSignal(r, at, kind, signal=s, esp32_name=s.esp32_name) for s, r in zip(signals, raws)],
        organization_id, source)


@dataclass(frozen=True)
class ControllerState:
    """A controller now: its announced ``status`` (None: never announced), ``online`` by the
    rule, ``last_seen`` (newest heartbeat or telemetry arrival, epoch s) and the last
    heartbeat's details."""

    esp32_name: str
    status: str | None
    status_at: int | None
    online: bool
    last_seen: int | None
    last_heartbeat_at: int | None
    last_telemetry_at: int | None
    details: dict


def _state(row: dict, now: int) -> ControllerState:
    return ControllerState(
        row["esp32_name"], row["status"], row["status_at"],
        rules.is_online(row["status"], row["last_heartbeat_at"], row["last_telemetry_at"], now),
        rules.last_heard(row["last_heartbeat_at"], row["last_telemetry_at"]), row["last_heartbeat_at"],
        row["last_telemetry_at"], row["details"] or {})


def controller_states(telemetry: DbEngine, organization_id: int, names: Sequence[str] | None = None, *,
                      now: int | None = None) -> dict[str, ControllerState]:
    """The state of the organization's known controllers (of ``names`` if given)."""
    at = clock.now_s() if now is None else int(now)
    with telemetry.connect() as conn:
        rows = controller_status_repo.controllers(conn, organization_id, names)
    return {r["esp32_name"]: _state(r, at) for r in rows}


def history(telemetry: DbEngine, organization_id: int, esp32_name: str, *, since: int | None = None,
            limit: int = 500) -> list[rules.StatusEvent]:
    with telemetry.connect() as conn:
        return controller_status_repo.history(conn, organization_id, esp32_name, since, limit)


def online_counts(telemetry: DbEngine, organization_id: int | None = None, *, now: int | None = None) -> dict[str, int]:
    """Controllers online and offline now (every organization's when None)."""
    at = clock.now_s() if now is None else int(now)
    with telemetry.connect() as conn:
        rows = controller_status_repo.all_controllers(conn, organization_id)
    online = sum(1 for r in rows if _state(r, at).online)
    return {"online": online, "offline": len(rows) - online}


def export_online_gauges(telemetry: DbEngine) -> None:
    """Set ``wattline_controllers{state}`` for a scrape; a database that does not answer
    leaves the last values (a scrape never fails on it)."""
    from wattline import metrics

    try:
        counts = online_counts(telemetry)
    except Exception as exc:  # noqa: BLE001 - the metrics endpoint must answer
        log.warning("metrics.controllers_unavailable", error=type(exc).__name__, detail=str(exc).splitlines()[0][:200])
        return
    for state, n in counts.items():
        metrics.CONTROLLERS.labels(state).set(n)

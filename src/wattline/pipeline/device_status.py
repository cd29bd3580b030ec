"""The controller-status stage: status and heartbeat messages, and the arrival of
telemetry, into ``controller_status`` and its history ``controller_status_events``.

* Every status and heartbeat message is kept as a raw event (source
  ``<source>:status`` / ``<source>:heartbeat``, so that telemetry events can be
  counted apart), valid or not.
* A valid status message is an event of the history when it changes what the
  controller's newest earlier event said (``domain.controller_status.is_change``): a
  redelivery, or the retained status seen again by a new subscription, is none. The
  latest state takes the status of the newest arrival.
* A valid heartbeat moves ``last_heartbeat_at`` and its details (firmware, rssi,
  uptime) forward; telemetry moves ``last_telemetry_at``.
* An invalid message is kept with its reason (``device_quarantine`` kind ``invalid``,
  with the controller the topic names) and counted; it never raises.

One transaction per call; every write is idempotent (see ``store.controller_status_repo``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from wattline import clock, metrics
from wattline.domain.controller_status import HEARTBEAT, STATUS, ControllerSignal, StatusEvent, is_change
from wattline.domain.devices import INVALID
from wattline.store import controller_status_repo as repo
from wattline.store import device_telemetry, raw_events
from wattline.store.engines import DbEngine, write_transaction


@dataclass(frozen=True)
class ReceivedSignal:
    """A status or heartbeat message as received: the parsed ``signal`` (None when it is
    invalid, then ``reason`` says why), the ``raw`` payload exactly as it arrived, its
    arrival (epoch s), and the controller the topic names (if any)."""

    raw: Any
    received_at: int
    kind: str
    signal: ControllerSignal | None = None
    reason: str | None = None
    esp32_name: str | None = None


@dataclass
class StatusResult:
    """``status_changes``: events added to the history; ``statuses``/``heartbeats``:
    valid messages taken in; ``invalid``: kept with their reason."""

    statuses: int = 0
    heartbeats: int = 0
    status_changes: int = 0
    invalid: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"statuses": self.statuses, "heartbeats": self.heartbeats, "status_changes": self.status_changes,
                "invalid": self.invalid}


class DeviceStatusStage:
    """Writes controller status for one telemetry database (one instance serves many calls)."""

    def __init__(self, telemetry: DbEngine):
        self.telemetry = telemetry

    def record(self, messages: Sequence[ReceivedSignal], organization_id: int, source: str) -> StatusResult:
        """Status and heartbeat messages (in arrival order) of one organization."""
        out = StatusResult()
        if not messages:
            return out
        with write_transaction(self.telemetry) as conn:
            ids = _store_raw(conn, messages, source)
            valid = [(m, rid) for m, rid in zip(messages, ids) if m.signal is not None]
            invalid = [(m, rid) for m, rid in zip(messages, ids) if m.signal is None]
            if invalid:
                device_telemetry.keep(conn, [
                    (organization_id, rid, INVALID, (m.reason or "invalid message")[:300], m.esp32_name, None,
                     f"{source}:{m.kind}", int(m.received_at)) for m, rid in invalid])
                out.invalid = len(invalid)
            names = sorted({m.signal.esp32_name for m, _ in valid if m.signal.kind == STATUS})
            newest = repo.latest_events(conn, organization_id, names)  # the newest change of each
            announced = {r["esp32_name"]: StatusEvent(r["status_at"], r["status"])  # the newest arrival of each
                         for r in repo.controllers(conn, organization_id, names) if r["status_at"] is not None}
            rows = []
            for m, rid in valid:
                s, at = m.signal, int(m.received_at)
                if s.kind == HEARTBEAT:
                    out.heartbeats += 1
                    details = dict(s.details)
                    if s.device_ts is not None:
                        details["device_ts"] = s.device_ts
                    rows.append((organization_id, s.esp32_name, None, None, at, None, details))
                    continue
                out.statuses += 1
                name, current = s.esp32_name, announced.get(s.esp32_name)
                if current is None or at >= current.ts:  # the newest arrival: it is the status now
                    if is_change(newest.get(name), s.status):
                        out.status_changes += self._add_event(conn, organization_id, name, at, s.status, rid)
                        newest[name] = StatusEvent(at, s.status)
                    announced[name] = StatusEvent(at, s.status)
                    rows.append((organization_id, name, s.status, at, None, None, None))
                    continue
                # an older arrival (another ingester's, delayed): a change in the history only, and
                # the status that arrived later becomes a change again right after it
                if not is_change(repo.event_before(conn, organization_id, name, at), s.status):
                    continue
                out.status_changes += self._add_event(conn, organization_id, name, at, s.status, rid)
                following = repo.event_after(conn, organization_id, name, at)
                if current.status != s.status and (following is None or following.ts > current.ts):
                    out.status_changes += self._add_event(conn, organization_id, name, current.ts, current.status,
                                                          None)
            repo.merge(conn, rows)
        for kind, n in ((STATUS, out.statuses), (HEARTBEAT, out.heartbeats)):
            metrics.CONTROLLER_MESSAGES.labels(source, kind, "accepted").inc(n)
        for m, _ in invalid:
            metrics.CONTROLLER_MESSAGES.labels(source, m.kind, "invalid").inc()
        return out

    @staticmethod
    def _add_event(conn, organization_id: int, name: str, ts: int, status: str, raw_event_id: int | None) -> int:
        repo.add_events(conn, [(organization_id, name, ts, status, raw_event_id)])
        return 1

    def telemetry_seen(self, organization_id: int, arrivals: Mapping[str, int]) -> None:
        """Telemetry arrived from these controllers (esp32 name -> arrival, epoch s)."""
        if not arrivals:
            return
        with write_transaction(self.telemetry) as conn:
            repo.merge(conn, [(organization_id, name, None, None, None, int(at), None)
                              for name, at in arrivals.items()])


def _store_raw(conn, messages: Sequence[ReceivedSignal], source: str) -> list[int]:
    """Raw event ids of the messages, stored with one write per (kind, arrival second)."""
    groups: dict[tuple[str, int], list[int]] = {}
    for i, m in enumerate(messages):
        groups.setdefault((m.kind, int(m.received_at)), []).append(i)
    ids = [0] * len(messages)
    for (kind, at), positions in groups.items():
        for i, rid in zip(positions, raw_events.store(conn, [messages[i].raw for i in positions], f"{source}:{kind}", at)):
            ids[i] = rid
    return ids


def received_now() -> int:
    """The arrival instant for messages received now (epoch s, wattline.clock)."""
    return clock.now_s()

"""Whether a campus controller is online, and its offline spells (pure rules).

A controller (an ESP32 such as ``ESP01``) announces its status on its retained
``status`` topic: ``online`` when it connects, and the broker publishes its Last Will,
``offline``, when the connection dies. It also publishes a heartbeat every
:data:`HEARTBEAT_S` seconds and telemetry. A status alone can be stale (a broker that
never noticed a half-open connection keeps saying ``online``), so a controller counts
as online only while it is also *heard*: a heartbeat or a telemetry message arrived
within :data:`MISSED_HEARTBEATS` heartbeat intervals. A controller that never sent a
status (a device posting over HTTP without a Last Will) is judged by what it is heard
from alone; an ``offline`` status is always offline.

All instants are UTC epoch seconds of *arrival* (the ingester's clock), never the
device's own clock, which may be off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

ONLINE, OFFLINE = "online", "offline"
STATUS, HEARTBEAT = "status", "heartbeat"  # message kinds
STATUSES = (ONLINE, OFFLINE)
HEARTBEAT_S = 30         # the firmware's heartbeat interval, s
MISSED_HEARTBEATS = 3    # this many intervals without a heartbeat or telemetry: offline


def window_s(heartbeat_s: int = HEARTBEAT_S, missed: int = MISSED_HEARTBEATS) -> int:
    """How long a controller may stay silent and still count as online, s."""
    return heartbeat_s * missed


def last_heard(last_heartbeat_at: int | None, last_telemetry_at: int | None) -> int | None:
    """The newest arrival of a heartbeat or telemetry message (epoch s), or None."""
    seen = [t for t in (last_heartbeat_at, last_telemetry_at) if t is not None]
    return max(seen) if seen else None


def is_online(status: str | None, last_heartbeat_at: int | None, last_telemetry_at: int | None, now: int, *,
              heartbeat_s: int = HEARTBEAT_S, missed: int = MISSED_HEARTBEATS) -> bool:
    """Online: the status is not ``offline`` and a heartbeat or telemetry message arrived
    within ``missed × heartbeat_s`` seconds before ``now`` (all epoch s)."""
    if status == OFFLINE:
        return False
    heard = last_heard(last_heartbeat_at, last_telemetry_at)
    return heard is not None and now - heard <= window_s(heartbeat_s, missed)


@dataclass(frozen=True)
class ControllerSignal:
    """A valid status or heartbeat message of controller ``esp32_name``.

    ``kind``: ``status`` or ``heartbeat``; ``status``: ``online``/``offline`` for a
    status message (None for a heartbeat); ``device_ts``: the device's own time (epoch
    s) if it sent one; ``details``: what the controller said about itself (firmware,
    rssi, uptime, classroom), without Nones."""

    esp32_name: str
    kind: str
    status: str | None
    device_ts: int | None = None
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StatusEvent:
    """A change of announced status, at its arrival (epoch s)."""

    ts: int
    status: str


def is_change(previous: StatusEvent | None, status: str) -> bool:
    """Whether ``status`` changes what the latest earlier event said (a repeat of the same
    status — a redelivery, the retained message seen again — is no event)."""
    return previous is None or previous.status != status


@dataclass(frozen=True)
class Spell:
    """A stretch of one status from ``start`` to ``end`` (epoch s; ``end`` None: ongoing)."""

    status: str
    start: int
    end: int | None

    @property
    def duration_s(self) -> int | None:
        return None if self.end is None else self.end - self.start


def spells(events: Iterable[StatusEvent]) -> list[Spell]:
    """Consecutive spells of the status history, oldest first; repeated statuses merge."""
    out: list[Spell] = []
    for e in sorted(events, key=lambda e: e.ts):
        if out and out[-1].status == e.status:
            continue
        if out:
            last = out[-1]
            out[-1] = Spell(last.status, last.start, e.ts)
        out.append(Spell(e.status, e.ts, None))
    return out


def offline_spells(events: Sequence[StatusEvent]) -> list[Spell]:
    """The offline spells of the history, oldest first (the last one may be ongoing)."""
    return [s for s in spells(events) if s.status == OFFLINE]

"""Telemetry SQL of device messages: messages kept out of the ledger (quarantine) and
the sequence identities of messages taken in. Written by the pipeline's device stage."""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Sequence

from sqlalchemy import Connection, func, select, update

from wattline.domain.devices import MessageKey
from wattline.store import bulk, raw_events as raw_store
from wattline.store.tables import device_messages, device_quarantine, raw_events

CHUNK = 500  # ids per IN list

_QUARANTINE_COLUMNS = ("organization_id", "raw_event_id", "kind", "reason", "esp32_name", "device_id", "source",
                       "received_at")


def _chunks(values: Sequence, n: int = CHUNK):
    for a in range(0, len(values), n):
        yield values[a:a + n]


def raw_event_ids(payloads: Sequence[Any]) -> list[int]:
    """The raw event id each payload has (or will have) in ``raw_events``."""
    return [raw_store.event_id(hashlib.sha256(raw_store.payload_text(p).encode("utf-8")).digest())
            for p in payloads]


def existing_raw_ids(conn: Connection, ids: Iterable[int]) -> set[int]:
    """Which of the raw event ids are stored already."""
    wanted = sorted({int(i) for i in ids})
    found: set[int] = set()
    for part in _chunks(wanted):
        found.update(r[0] for r in conn.execute(select(raw_events.c.id).where(raw_events.c.id.in_(part))))
    return found


def keep(conn: Connection, rows: Sequence[tuple]) -> None:
    """Quarantine rows (``_QUARANTINE_COLUMNS`` order); a message kept already keeps its first reason."""
    unique = list({(r[0], r[1]): r for r in rows}.values())
    bulk.upsert(conn, device_quarantine, _QUARANTINE_COLUMNS, unique, key=("organization_id", "raw_event_id"),
                update=())


def pending_unknown(conn: Connection, organization_id: int, esp32_name: str, device_id: str) -> list[tuple[int, str]]:
    """(raw event id, payload text) of the device's messages kept as from an unknown
    device and not replayed yet, in arrival order."""
    return [tuple(r) for r in conn.execute(
        select(device_quarantine.c.raw_event_id, raw_events.c.payload)
        .join(raw_events, raw_events.c.id == device_quarantine.c.raw_event_id)
        .where(device_quarantine.c.organization_id == organization_id,
               device_quarantine.c.esp32_name == esp32_name, device_quarantine.c.device_id == device_id,
               device_quarantine.c.kind == "unknown_device", device_quarantine.c.replayed_at.is_(None))
        .order_by(device_quarantine.c.received_at, device_quarantine.c.raw_event_id))]


def kept_raw_ids(conn: Connection, organization_id: int, ids: Iterable[int]) -> set[int]:
    """Which of the raw event ids are messages of the organization kept out of the ledger
    and not replayed yet."""
    wanted = sorted({int(i) for i in ids})
    found: set[int] = set()
    for part in _chunks(wanted):
        found.update(r[0] for r in conn.execute(select(device_quarantine.c.raw_event_id).where(
            device_quarantine.c.organization_id == organization_id, device_quarantine.c.raw_event_id.in_(part),
            device_quarantine.c.replayed_at.is_(None))))
    return found


def mark_replayed(conn: Connection, organization_id: int, raw_event_ids: Sequence[int], at: int) -> None:
    for part in _chunks(sorted({int(i) for i in raw_event_ids})):
        conn.execute(update(device_quarantine).where(
            device_quarantine.c.organization_id == organization_id,
            device_quarantine.c.raw_event_id.in_(part)).values(replayed_at=at))


def quarantine_counts(conn: Connection, organization_id: int | None = None) -> dict[str, int]:
    """Kept messages by kind, not counting those replayed since."""
    q = (select(device_quarantine.c.kind, func.count()).where(device_quarantine.c.replayed_at.is_(None))
         .group_by(device_quarantine.c.kind))
    if organization_id is not None:
        q = q.where(device_quarantine.c.organization_id == organization_id)
    return {k: int(n) for k, n in conn.execute(q)}


def stored_keys(conn: Connection, keys: Sequence[MessageKey]) -> list[MessageKey]:
    """Stored message identities with the device, sequence number and uptime of any of ``keys``."""
    wanted = {(k.asset_id, k.sequence_no, k.uptime_s) for k in keys}
    assets = sorted({k.asset_id for k in keys})
    seqs = sorted({k.sequence_no for k in keys})
    out = []
    for part in _chunks(seqs):
        rows = conn.execute(select(device_messages.c.asset_id, device_messages.c.sequence_no,
                                   device_messages.c.uptime_s, device_messages.c.ts)
                            .where(device_messages.c.asset_id.in_(assets), device_messages.c.sequence_no.in_(part)))
        out.extend(MessageKey(*r) for r in rows if (r[0], r[1], r[2]) in wanted)
    return out


def record_keys(conn: Connection, rows: Sequence[tuple]) -> None:
    """(asset id, sequence no, uptime s, ts, raw event id, received at) of messages taken in."""
    unique = list({r[:4]: r for r in rows}.values())
    bulk.upsert(conn, device_messages, ("asset_id", "sequence_no", "uptime_s", "ts", "raw_event_id", "received_at"),
                unique, key=("asset_id", "sequence_no", "uptime_s", "ts"), update=())

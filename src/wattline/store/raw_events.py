"""Raw payloads: stored exactly as they arrived, deduplicated by content hash, never updated."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Sequence

from sqlalchemy import Connection

from wattline.store import bulk
from wattline.store.tables import raw_events


def payload_text(payload: Any) -> str:
    """The text kept for a payload: the original text if it came as text (bytes that are
    not UTF-8: their base64 in a small JSON object, so nothing of them is lost and two
    different ones never share an event), else canonical JSON (sorted keys) so equal
    content hashes equal."""
    if isinstance(payload, (bytes, bytearray)):
        try:
            return bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            return json.dumps({"undecodable_utf8_base64": base64.b64encode(payload).decode("ascii")})
    if isinstance(payload, str):
        return payload
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_id(digest: bytes) -> int:
    # The first 8 bytes of sha256 as a signed int64: a deterministic id, so a
    # reading can link to its payload without a round trip to the database.
    return int.from_bytes(digest[:8], "big", signed=True)


def store(conn: Connection, payloads: Sequence[Any], source: str, received_at: int) -> list[int]:
    """Insert-or-ignore every payload; return the raw event id of each, in order."""
    ids: list[int] = []
    rows: dict[int, tuple] = {}
    for p in payloads:
        text = payload_text(p)
        digest = hashlib.sha256(text.encode("utf-8")).digest()
        rid = event_id(digest)
        ids.append(rid)
        if rid not in rows:
            rows[rid] = (rid, digest.hex(), source, received_at, text)
    bulk.upsert(
        conn, raw_events, ("id", "sha256", "source", "received_at", "payload"),
        list(rows.values()), key=("id",), update=(),
    )
    return ids

"""Telemetry SQL of controller status: the latest per controller (``controller_status``)
and the history of its changes (``controller_status_events``).

Written by the pipeline (``pipeline.device_status``); read by the API and the
dashboard. Instants are UTC epoch seconds of arrival. Every write is monotonic in
SQL — a later arrival replaces an earlier one, never the reverse — so concurrent
ingesters and redeliveries cannot move a controller back in time.
"""

from __future__ import annotations

import json
from typing import Sequence

from sqlalchemy import Connection, and_, func, select

from wattline.domain.controller_status import StatusEvent
from wattline.store import bulk
from wattline.store.tables import controller_status, controller_status_events

_T = "controller_status"


def _newer(col: str) -> str:
    """SQL: the incoming value of ``col`` when it is set and later than the stored one."""
    return f"(excluded.{col} IS NOT NULL AND ({_T}.{col} IS NULL OR excluded.{col} >= {_T}.{col}))"


def _take_if(cond: str, col: str) -> str:
    return f"CASE WHEN {cond} THEN excluded.{col} ELSE {_T}.{col} END"


_COLUMNS = ("organization_id", "esp32_name", "status", "status_at", "last_heartbeat_at", "last_telemetry_at",
            "details")
_COMBINE = {
    "status": _take_if(_newer("status_at"), "status"),
    "status_at": _take_if(_newer("status_at"), "status_at"),
    "last_heartbeat_at": _take_if(_newer("last_heartbeat_at"), "last_heartbeat_at"),
    # the details are the newest heartbeat's
    "details": _take_if(_newer("last_heartbeat_at"), "details"),
    "last_telemetry_at": _take_if(_newer("last_telemetry_at"), "last_telemetry_at"),
}


def merge(conn: Connection, rows: Sequence[tuple]) -> None:
    """Merge rows (``organization_id, esp32_name, status, status_at, last_heartbeat_at,
    last_telemetry_at, details``; None where a row says nothing) into the latest state:
    each of status (with ``status_at``), heartbeat (with its ``details``) and telemetry
    is taken only from a later arrival than the stored one."""
    merged: dict[tuple, list] = {}
    for r in rows:  # one row per controller: SQL's ON CONFLICT cannot touch a row twice
        key = (int(r[0]), r[1])
        cur = merged.get(key)
        new = [key[0], r[1], r[2], r[3], r[4], r[5], r[6]]
        if cur is None:
            merged[key] = new
            continue
        if new[3] is not None and (cur[3] is None or new[3] >= cur[3]):
            cur[2], cur[3] = new[2], new[3]
        if new[4] is not None and (cur[4] is None or new[4] >= cur[4]):
            cur[4], cur[6] = new[4], new[6]
        if new[5] is not None and (cur[5] is None or new[5] >= cur[5]):
            cur[5] = new[5]
    out = [tuple(v[:6]) + (None if v[6] is None else json.dumps(v[6], sort_keys=True),) for v in merged.values()]
    bulk.upsert(conn, controller_status, _COLUMNS, out, key=("organization_id", "esp32_name"), combine=_COMBINE)


def latest_events(conn: Connection, organization_id: int, names: Sequence[str]) -> dict[str, StatusEvent]:
    """The newest status event of each named controller (those with one)."""
    if not names:
        return {}
    e = controller_status_events
    newest = (select(e.c.esp32_name, func.max(e.c.ts).label("ts"))
              .where(e.c.organization_id == organization_id, e.c.esp32_name.in_(sorted(set(names))))
              .group_by(e.c.esp32_name).subquery())
    rows = conn.execute(select(e.c.esp32_name, e.c.ts, e.c.status).join(
        newest, and_(newest.c.esp32_name == e.c.esp32_name, newest.c.ts == e.c.ts))
        .where(e.c.organization_id == organization_id).order_by(e.c.esp32_name, e.c.ts, e.c.status))
    return {name: StatusEvent(int(ts), status) for name, ts, status in rows}


def event_before(conn: Connection, organization_id: int, esp32_name: str, ts: int) -> StatusEvent | None:
    """The controller's newest status event at or before ``ts``."""
    e = controller_status_events
    row = conn.execute(select(e.c.ts, e.c.status).where(
        e.c.organization_id == organization_id, e.c.esp32_name == esp32_name, e.c.ts <= ts)
        .order_by(e.c.ts.desc()).limit(1)).first()
    return None if row is None else StatusEvent(int(row[0]), row[1])


def event_after(conn: Connection, organization_id: int, esp32_name: str, ts: int) -> StatusEvent | None:
    """The controller's oldest status event after ``ts``."""
    e = controller_status_events
    row = conn.execute(select(e.c.ts, e.c.status).where(
        e.c.organization_id == organization_id, e.c.esp32_name == esp32_name, e.c.ts > ts)
        .order_by(e.c.ts).limit(1)).first()
    return None if row is None else StatusEvent(int(row[0]), row[1])


def add_events(conn: Connection, rows: Sequence[tuple]) -> None:
    """Status events (organization_id, esp32_name, ts, status, raw_event_id); one stored already is kept."""
    bulk.upsert(conn, controller_status_events, ("organization_id", "esp32_name", "ts", "status", "raw_event_id"),
                list({r[:4]: r for r in rows}.values()), key=("organization_id", "esp32_name", "ts", "status"),
                update=())


def controllers(conn: Connection, organization_id: int, names: Sequence[str] | None = None) -> list[dict]:
    """The latest state of the organization's controllers (of ``names`` if given), by name."""
    c = controller_status
    q = select(c).where(c.c.organization_id == organization_id)
    if names is not None:
        q = q.where(c.c.esp32_name.in_(sorted(set(names))))
    return [dict(r) for r in conn.execute(q.order_by(c.c.esp32_name)).mappings()]


def history(conn: Connection, organization_id: int, esp32_name: str, since: int | None = None,
            limit: int = 500) -> list[StatusEvent]:
    """The controller's status events, oldest first: the newest ``limit`` of them at or
    after ``since`` (plus the one before ``since``, so the first spell has its start)."""
    e = controller_status_events
    q = select(e.c.ts, e.c.status).where(e.c.organization_id == organization_id, e.c.esp32_name == esp32_name)
    if since is not None:
        q = q.where(e.c.ts >= since)
    rows = list(conn.execute(q.order_by(e.c.ts.desc(), e.c.status).limit(limit)))
    out = [StatusEvent(int(ts), s) for ts, s in reversed(rows)]
    if since is not None:
        before = event_before(conn, organization_id, esp32_name, since - 1)
        if before is not None:
            out.insert(0, before)
    return out


def all_controllers(conn: Connection, organization_id: int | None = None) -> list[dict]:
    """Every controller's latest state (of one organization if given)."""
    q = select(controller_status)
    if organization_id is not None:
        q = q.where(controller_status.c.organization_id == organization_id)
    return [dict(r) for r in conn.execute(q).mappings()]

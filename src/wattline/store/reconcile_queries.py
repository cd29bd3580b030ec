"""What reconciliation reads (and the two small writes its tests and repairs need).

Registry side: organizations and their devices with their series. Telemetry side:
a device's message instants, its flagged ledger entries, its messages' arrival
order (``device_messages``), controller status, and the stored buckets over a range.
Instants are UTC epoch seconds; energies milli-Wh.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sqlalchemy import Connection, func, select, update

from wattline.store import bulk
from wattline.store.tables import (
    aggregates, assets, controller_status, controller_status_events, devices, group_members, groups, jobs, organizations, points,
)

_ROW_COLUMNS = ("series_id", "period", "bucket_start", "bucket_end", "energy_milli_wh", "value_min", "value_max",
                "value_sum", "value_count", "value_last", "last_ts", "ledger_count", "flags",
                "on_time_s", "hc_energy_milli_wh")


def _ids(ids: Sequence[int]) -> str:
    return ", ".join(str(int(i)) for i in ids)


# ---------------------------------------------------------------- registry (main)


def organizations_list(conn: Connection, name: str | None = None) -> list[dict]:
    """Every organization (or the one named): id, name, timezone, by id."""
    q = select(organizations.c.id, organizations.c.name, organizations.c.timezone).order_by(organizations.c.id)
    if name is not None:
        q = q.where(organizations.c.name == name)
    return [dict(r) for r in conn.execute(q).mappings()]


def classroom_by_name(conn: Connection, name: str) -> dict | None:
    """A classroom of any organization by name: id, organization_id, name (the first by id)."""
    row = conn.execute(select(groups.c.id, groups.c.organization_id, groups.c.name)
                       .where(groups.c.kind == "classroom", groups.c.name == name)
                       .order_by(groups.c.id)).mappings().first()
    return dict(row) if row else None


def organization_devices(conn: Connection, organization_id: int,
                         classroom_ids: Sequence[int] | None = None) -> list[dict]:
    """The organization's devices (of these classrooms if given): asset_id, esp32_name,
    device_id, classroom_id, classroom, timezone (the asset's), energy_method and
    ``series`` (point key -> series id), by controller and device id."""
    q = (select(devices.c.asset_id, devices.c.esp32_name, devices.c.device_id, devices.c.classroom_id,
                groups.c.name.label("classroom"), assets.c.timezone, devices.c.energy_method)
         .join(assets, assets.c.id == devices.c.asset_id)
         .join(groups, groups.c.id == devices.c.classroom_id)
         .where(devices.c.organization_id == organization_id)
         .order_by(devices.c.esp32_name, devices.c.device_id))
    if classroom_ids is not None:
        q = q.where(devices.c.classroom_id.in_(list(classroom_ids)))
    out = [dict(r, series={}) for r in conn.execute(q).mappings()]
    if out:
        by_asset = {d["asset_id"]: d for d in out}
        for aid, key, sid in conn.execute(select(points.c.asset_id, points.c.key, points.c.id)
                                          .where(points.c.asset_id.in_(list(by_asset)))):
            by_asset[aid]["series"][key] = sid
    return out


# ---------------------------------------------------------------- telemetry


def reading_times(conn: Connection, series_ids: Sequence[int], start: int, end: int) -> dict[int, np.ndarray]:
    """Reading instants in [start, end) per series (device time)."""
    if not series_ids:
        return {}
    cols = bulk.fetch_columns(conn, f"SELECT series_id, ts FROM readings WHERE series_id IN ({_ids(series_ids)}) "
                                    f"AND ts >= {int(start)} AND ts < {int(end)} ORDER BY series_id, ts",
                              ("series_id", "ts"), (np.int64, np.int64))
    return _split(cols, "series_id")


def flagged_entries(conn: Connection, series_ids: Sequence[int], start: int, end: int,
                    mask: int) -> dict[int, dict[str, np.ndarray]]:
    """Ledger entries overlapping [start, end) with any flag of ``mask`` per series:
    start_ts, end_ts, delta (milli-Wh), flags."""
    if not series_ids:
        return {}
    cols = bulk.fetch_columns(conn, f"""
        SELECT series_id, start_ts, ts, delta_milli_wh, flags FROM readings
        WHERE series_id IN ({_ids(series_ids)}) AND ts > {int(start)} AND start_ts < {int(end)}
          AND delta_milli_wh IS NOT NULL AND (flags & {int(mask)}) <> 0
        ORDER BY series_id, ts""", ("series_id", "start_ts", "end_ts", "delta", "flags"), (np.int64,) * 5)
    return _split(cols, "series_id")


def message_arrivals(conn: Connection, asset_ids: Sequence[int], start: int, end: int) -> dict[int, dict[str, np.ndarray]]:
    """Per device: its taken-in messages with device time in [start, end): ts and received_at."""
    if not asset_ids:
        return {}
    cols = bulk.fetch_columns(conn, f"SELECT asset_id, ts, received_at FROM device_messages "
                                    f"WHERE asset_id IN ({_ids(asset_ids)}) AND ts >= {int(start)} AND ts < {int(end)}",
                              ("asset_id", "ts", "received_at"), (np.int64,) * 3)
    return _split(cols, "asset_id")


def _split(cols: dict[str, np.ndarray], key: str) -> dict[int, Any]:
    """Columns grouped by ``key``: key value -> its other columns (or, when the only
    other column is ``ts``, that array itself)."""
    k = cols[key]
    if not len(k):
        return {}
    order = np.argsort(k, kind="stable")
    cols = {n: v[order] for n, v in cols.items()}
    k = cols[key]
    cut = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    bounds = np.r_[cut, len(k)]
    out = {}
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        part = {n: v[a:b] for n, v in cols.items() if n != key}
        out[int(k[a])] = part["ts"] if list(part) == ["ts"] else part
    return out


def unknown_device_messages(conn: Connection, organization_id: int, start: int, end: int) -> list[tuple]:
    """Kept messages of unregistered devices that arrived in [start, end) and are not
    replayed: (esp32_name, device_id, count, first, last arrival) per device."""
    return [tuple(r) for r in conn.exec_driver_sql(f"""
        SELECT esp32_name, device_id, COUNT(*), MIN(received_at), MAX(received_at) FROM device_quarantine
        WHERE organization_id = {int(organization_id)} AND kind = 'unknown_device' AND replayed_at IS NULL
          AND received_at >= {int(start)} AND received_at < {int(end)}
        GROUP BY esp32_name, device_id ORDER BY esp32_name, device_id""")]


def controller_statuses(conn: Connection, organization_id: int) -> dict[str, dict]:
    """The organization's controllers: esp32_name -> status, status_at, last_heartbeat_at, last_telemetry_at."""
    rows = conn.execute(select(controller_status.c.esp32_name, controller_status.c.status,
                               controller_status.c.status_at, controller_status.c.last_heartbeat_at,
                               controller_status.c.last_telemetry_at)
                        .where(controller_status.c.organization_id == organization_id)).mappings()
    return {r["esp32_name"]: dict(r) for r in rows}


def status_history(conn: Connection, organization_id: int, start: int,
                   end: int) -> dict[str, tuple[str | None, list[tuple[int, str]]]]:
    """Per controller: its status at ``start`` (the last change before it, None: none)
    and its changes in [start, end) as (ts, status)."""
    e = controller_status_events
    out: dict[str, tuple[str | None, list[tuple[int, str]]]] = {}
    for esp, ts, st in conn.execute(select(e.c.esp32_name, e.c.ts, e.c.status).where(
            e.c.organization_id == organization_id, e.c.ts >= start, e.c.ts < end).order_by(e.c.ts)):
        out.setdefault(esp, (None, []))[1].append((int(ts), st))
    last = (select(e.c.esp32_name, func.max(e.c.ts).label("ts"))
            .where(e.c.organization_id == organization_id, e.c.ts < start).group_by(e.c.esp32_name).subquery())
    for esp, st in conn.execute(select(e.c.esp32_name, e.c.status).join(
            last, (last.c.esp32_name == e.c.esp32_name) & (last.c.ts == e.c.ts))
            .where(e.c.organization_id == organization_id).order_by(e.c.status)):
        # two changes in the same second: "online" sorts first, so "offline" wins, the safe side
        out[esp] = (st, out.get(esp, (None, []))[1])
    return out


def add_status_events(conn: Connection, organization_id: int, events: Sequence[tuple[str, int, str]]) -> None:
    """Status changes (esp32_name, ts, status) of controllers (the MQTT ingester owns
    these rows; this is for seeding tests and demos). Idempotent."""
    bulk.upsert(conn, controller_status_events, ("organization_id", "esp32_name", "ts", "status"),
                [(organization_id, esp, int(ts), st) for esp, ts, st in events],
                key=("organization_id", "esp32_name", "ts", "status"), update=())


def put_controller_status(conn: Connection, organization_id: int, esp32_name: str, *, status: str | None,
                          status_at: int | None = None, last_heartbeat_at: int | None = None,
                          last_telemetry_at: int | None = None) -> None:
    """Set a controller's status row (the MQTT ingester owns these rows; this is for
    seeding tests and demos). Idempotent."""
    cols = ("organization_id", "esp32_name", "status", "status_at", "last_heartbeat_at", "last_telemetry_at")
    bulk.upsert(conn, controller_status, cols,
                [(organization_id, esp32_name, status, status_at, last_heartbeat_at, last_telemetry_at)],
                key=("organization_id", "esp32_name"))


def stored_buckets(conn: Connection, series_ids: Sequence[int], start: int, end: int) -> dict[tuple, dict]:
    """Stored day/month/year buckets of ``series_ids`` overlapping [start, end):
    (series_id, period, bucket_start) -> row (column -> value)."""
    if not series_ids:
        return {}
    cols = [c for c in _ROW_COLUMNS if c in aggregates.c]
    rows = bulk.fetch_rows(conn, f"SELECT {', '.join(cols)} FROM aggregates WHERE series_id IN ({_ids(series_ids)}) "
                                 f"AND bucket_start < {int(end)} AND bucket_end > {int(start)}")
    return {(r[0], r[1], r[2]): dict(zip(cols, r)) for r in rows}


def overwrite_bucket_energy(conn: Connection, series_id: int, period: str, bucket_start: int,
                            energy_milli_wh: int) -> int:
    """Set a stored bucket's energy (a deliberate tamper, for tests and drills of the
    reconciliation); returns rows changed."""
    return conn.execute(update(aggregates).where(
        aggregates.c.series_id == series_id, aggregates.c.period == period,
        aggregates.c.bucket_start == bucket_start).values(energy_milli_wh=energy_milli_wh)).rowcount


def series_timezones(conn: Connection, series_ids: Sequence[int]) -> dict[int, str]:
    """series id -> zone of its buckets (``series_info``)."""
    if not series_ids:
        return {}
    return {int(s): tz for s, tz in bulk.fetch_rows(
        conn, f"SELECT series_id, timezone FROM series_info WHERE series_id IN ({_ids(series_ids)})")}


def assets_in_scope(conn: Connection, scope: str, scope_id: int | None) -> list[int]:
    """The assets a cost version's scope covers (global: every asset), by id."""
    if scope == "asset":
        q = select(assets.c.id).where(assets.c.id == scope_id)
    elif scope == "group":
        q = select(group_members.c.asset_id).where(group_members.c.group_id == scope_id)
    elif scope == "organization":
        q = select(assets.c.id).where(assets.c.organization_id == scope_id)
    else:
        q = select(assets.c.id)
    return sorted(int(a) for a in conn.execute(q).scalars())


def first_entry_end(conn: Connection, series_ids: Sequence[int], after: int) -> int | None:
    """The earliest end of a ledger entry of ``series_ids`` after ``after`` (None: none)."""
    if not series_ids:
        return None
    v = conn.exec_driver_sql(f"SELECT MIN(ts) FROM readings WHERE series_id IN ({_ids(series_ids)}) "
                             f"AND ts > {int(after)} AND delta_milli_wh IS NOT NULL").scalar()
    return None if v is None else int(v)


def entries_ending(conn: Connection, series_ids: Sequence[int], lo: int, hi: int) -> dict[int, dict[str, np.ndarray]]:
    """Ledger entries of ``series_ids`` ending in (lo, hi] (each entry in exactly one
    such window), per series: start_ts, end_ts, delta (milli-Wh)."""
    if not series_ids:
        return {}
    cols = bulk.fetch_columns(conn, f"SELECT series_id, start_ts, ts, delta_milli_wh FROM readings "
                                    f"WHERE series_id IN ({_ids(series_ids)}) AND ts > {int(lo)} AND ts <= {int(hi)} "
                                    f"AND delta_milli_wh IS NOT NULL ORDER BY series_id, ts",
                              ("series_id", "start_ts", "end_ts", "delta"), (np.int64,) * 4)
    return _split(cols, "series_id")


def device_labels(conn: Connection, asset_ids: Sequence[int]) -> dict[int, dict]:
    """asset id -> esp32_name, device_id, classroom (name) of devices."""
    ids = sorted({int(a) for a in asset_ids if a is not None})
    if not ids:
        return {}
    rows = conn.execute(select(devices.c.asset_id, devices.c.esp32_name, devices.c.device_id,
                               groups.c.name.label("classroom"))
                        .join(groups, groups.c.id == devices.c.classroom_id)
                        .where(devices.c.asset_id.in_(ids))).mappings()
    return {r["asset_id"]: dict(r) for r in rows}


def group_names(conn: Connection, group_ids: Sequence[int]) -> dict[int, str]:
    ids = sorted({int(g) for g in group_ids if g is not None})
    if not ids:
        return {}
    return dict(conn.execute(select(groups.c.id, groups.c.name).where(groups.c.id.in_(ids))).all())


def last_reconciliation(conn: Connection) -> dict | None:
    """The newest ``reconcile`` job (nightly, CLI): id, status, created_at, updated_at, result."""
    row = conn.execute(select(jobs.c.id, jobs.c.status, jobs.c.created_at, jobs.c.updated_at, jobs.c.result)
                       .where(jobs.c.kind == "reconcile").order_by(jobs.c.created_at.desc()).limit(1)).mappings().first()
    return dict(row) if row else None

"""SQL of the campus health report (``GET /api/power-analytics/health``) and of the
device page: counts of telemetry events, kept messages, ledger entries and resets,
the newest job runs, and a device's daily energy.

Raw events carry no organization: their counts are of the whole telemetry database,
by source. Everything else is of one organization.
"""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from sqlalchemy import Connection, func, select

from wattline.domain.quality import Flag
from wattline.store.tables import (aggregates, device_quarantine, devices, jobs, points, raw_events, readings)

CHUNK = 500


def raw_event_counts(conn: Connection, sources: Sequence[str], since: int) -> tuple[int, int]:
    """(all, received at or after ``since``) raw events of ``sources``."""
    q = select(func.count(), func.count().filter(raw_events.c.received_at >= since))
    total, recent = conn.execute(q.where(raw_events.c.source.in_(list(sources)))).one()
    return int(total), int(recent)


def newest_raw_event(conn: Connection, sources: Sequence[str]) -> int | None:
    """Arrival (epoch s) of the newest raw event of ``sources``."""
    v = conn.execute(select(func.max(raw_events.c.received_at)).where(raw_events.c.source.in_(list(sources)))).scalar()
    return None if v is None else int(v)


def kept_counts(conn: Connection, organization_id: int) -> dict[str, int]:
    """Messages of the organization kept out of the ledger and not replayed, by kind."""
    q = (select(device_quarantine.c.kind, func.count())
         .where(device_quarantine.c.organization_id == organization_id, device_quarantine.c.replayed_at.is_(None))
         .group_by(device_quarantine.c.kind))
    return {k: int(n) for k, n in conn.execute(q)}


def kept_of_sources(conn: Connection, organization_id: int, sources: Sequence[str]) -> int:
    """Kept, not replayed messages of the organization that came from ``sources``."""
    return int(conn.execute(select(func.count()).where(
        device_quarantine.c.organization_id == organization_id, device_quarantine.c.replayed_at.is_(None),
        device_quarantine.c.source.in_(list(sources)))).scalar())


def device_series(conn: Connection, organization_id: int) -> dict[int, int]:
    """Main database: the series holding each device's energy ledger, by asset id
    (``energy_total`` for method ``counter``, ``power`` for method ``power``)."""
    rows = conn.execute(select(points.c.asset_id, points.c.id, points.c.key, devices.c.energy_method)
                        .join(devices, devices.c.asset_id == points.c.asset_id)
                        .where(devices.c.organization_id == organization_id,
                               points.c.key.in_(("energy_total", "power"))))
    out: dict[int, int] = {}
    for aid, sid, key, method in rows:
        if (key == "energy_total") == (method == "counter"):
            out[int(aid)] = int(sid)
    return out


def ledger_counts(conn: Connection, series_ids: Sequence[int]) -> tuple[int, int]:
    """(ledger entries, entries flagged as a counter reset) of the series.

    Reads the series' ledger rows (the primary key's range per series): linear in the
    series' history."""
    entries = resets = 0
    reset = int(Flag.RESET)
    ids = sorted(set(int(s) for s in series_ids))
    for a in range(0, len(ids), CHUNK):
        part = ids[a:a + CHUNK]
        n, r = conn.execute(select(
            func.count(readings.c.delta_milli_wh),
            func.count().filter(readings.c.flags.op("&")(reset) != 0))
            .where(readings.c.series_id.in_(part))).one()
        entries += int(n or 0)
        resets += int(r or 0)
    return entries, resets


def newest_job(conn: Connection, kinds: Sequence[str]) -> dict | None:
    """The newest job of one of ``kinds`` (id, kind, status, updated_at)."""
    row = conn.execute(select(jobs.c.id, jobs.c.kind, jobs.c.status, jobs.c.updated_at)
                       .where(jobs.c.kind.in_(list(kinds))).order_by(jobs.c.updated_at.desc()).limit(1)).mappings().first()
    return None if row is None else dict(row)


def jobs_running(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).where(jobs.c.status.in_(("queued", "running")))).scalar())


def daily_energy(conn: Connection, series_id: int, start: int, end: int) -> list[dict]:
    """The stored local-day buckets of a series starting in [start, end): bucket_start,
    bucket_end (epoch s), energy_milli_wh, on_time_s, hc_energy_milli_wh, ledger_count, flags."""
    a = aggregates
    rows = conn.execute(select(a.c.bucket_start, a.c.bucket_end, a.c.energy_milli_wh, a.c.on_time_s,
                               a.c.hc_energy_milli_wh, a.c.ledger_count, a.c.flags)
                        .where(a.c.series_id == series_id, a.c.period == "day", a.c.bucket_start >= start,
                               a.c.bucket_start < end).order_by(a.c.bucket_start))
    return [dict(r) for r in rows.mappings()]


def as_epoch(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())

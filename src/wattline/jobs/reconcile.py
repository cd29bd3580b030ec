"""Reconciliation: a local day of an organization's devices checked against its rules.

For each device of the organization's classrooms, over the organization-local day:
missing heartbeats (the controller's status row, and spells of more than 10 min
without a message), ledger gaps of more than 10 min, out-of-order bursts (from the
arrival order of ``device_messages``), energy metered while switched off, and
stored day/month/year buckets that differ from their ledger; and messages of
unregistered devices that arrived that day and are still kept. The rules are
``domain.reconcile``.

What is safe is fixed: the day's buckets of every device series are rebuilt from
the ledger (``pipeline.aggregate.recompute``) — which repairs a bucket that drifted
and re-aggregates the range of an out-of-order burst — and the rewrite is noted
(an item already resolved by ``reconcile``). The rest becomes an open review item.
Items are keyed by (rule, device, local day), so running the same night again opens
nothing new. Run nightly at 02:00 local (``jobs.scheduler``), by ``wattline
reconcile`` and by ``POST /api/power-analytics/recalculate`` (a job with progress).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Callable, Sequence

import numpy as np

from wattline import clock, logs
from wattline.context import AppContext
from wattline.domain import reconcile as R
from wattline.domain import timeutil
from wattline.domain.devices import ENERGY_TOTAL, POWER
from wattline.domain.quality import Flag
from wattline.pipeline import aggregate
from wattline.store import reconcile_queries as Q
from wattline.store import review_items_repo
from wattline.store.engines import write_transaction

log = logs.get("wattline.reconcile")

RESOLVER = "reconcile"  # resolved_by of the findings reconciliation fixed itself


@dataclass
class Summary:
    """What one run did: ``findings`` per kind, ``fixed`` (findings repaired by
    re-aggregation), ``items_opened`` (new open review items), ``buckets_rewritten``
    (stored buckets that differed from the ledger and were rewritten)."""

    organization: str
    days: list[str] = field(default_factory=list)
    devices_checked: int = 0
    findings: Counter = field(default_factory=Counter)
    fixed: int = 0
    items_opened: int = 0
    items_noted: int = 0
    buckets_rewritten: int = 0
    seconds: float = 0.0

    def add(self, other: "Summary") -> None:
        self.days += [d for d in other.days if d not in self.days]
        self.devices_checked += other.devices_checked
        self.findings.update(other.findings)
        self.fixed += other.fixed
        self.items_opened += other.items_opened
        self.items_noted += other.items_noted
        self.buckets_rewritten += other.buckets_rewritten
        self.seconds += other.seconds

    def to_dict(self) -> dict:
        return {"organization": self.organization, "days": list(self.days), "devices_checked": self.devices_checked,
                "findings": {k: int(self.findings.get(k, 0)) for k in R.KINDS}, "fixed": self.fixed,
                "items_opened": self.items_opened, "items_noted": self.items_noted,
                "buckets_rewritten": self.buckets_rewritten, "seconds": round(self.seconds, 3)}


def yesterday(tz: str, now: int | None = None) -> date:
    """The local date before today's in ``tz`` (by ``wattline.clock``)."""
    return timeutil.local_date(clock.now_s() if now is None else now, tz) - timedelta(days=1)


def organizations(ctx: AppContext, name: str | None = None) -> list[dict]:
    """The organizations to reconcile (id, name, timezone); ValueError for an unknown name."""
    with ctx.dbs.main_reader.connect() as conn:
        orgs = Q.organizations_list(conn, name)
    if name is not None and not orgs:
        raise ValueError(f"unknown organization {name!r}")
    return orgs


def reconcile_day(ctx: AppContext, org: dict, day: date, *, classroom_ids: Sequence[int] | None = None,
                  now: int | None = None, progress: Callable[[int, int], None] | None = None) -> Summary:
    """Check (and fix what is safe of) one organization-local ``day`` for the devices of
    the organization (of ``classroom_ids`` if given). Blocking; ``progress(done, total)``
    is called after each classroom."""
    t0 = time.perf_counter()
    now = clock.now_s() if now is None else int(now)
    start, end = timeutil.day_bounds(day, org["timezone"])
    with ctx.dbs.main_reader.connect() as conn:
        devices = Q.organization_devices(conn, org["id"], classroom_ids)
    out = Summary(org["name"], [day.isoformat()])
    rooms: dict[int, list[dict]] = {}
    for d in devices:
        rooms.setdefault(d["classroom_id"], []).append(d)
    findings: list[R.Finding] = []
    horizon = min(end, now)
    with ctx.dbs.telemetry.connect() as conn:
        statuses = Q.controller_statuses(conn, org["id"])
        history = Q.status_history(conn, org["id"], start, horizon)
    for esp in sorted({d["esp32_name"] for d in devices}):
        st = statuses.get(esp)
        if st is not None and horizon > start:  # nothing known of a controller without a status row
            before, changes = history.get(esp, (None, []))
            # heard from: a heartbeat, or telemetry (a controller posting over HTTP sends no heartbeats)
            heard = [t for t in (st["last_heartbeat_at"], st.get("last_telemetry_at")) if t is not None]
            findings += R.controller_silence(max(heard) if heard else None, st["status"], st["status_at"], start,
                                             horizon, day=day.isoformat(), esp32_name=esp,
                                             offline=R.offline_spells(changes, before, start, horizon))
    if classroom_ids is None:  # kept messages name no classroom the registry knows
        with ctx.dbs.telemetry.connect() as conn:
            findings += R.unknown_devices(Q.unknown_device_messages(conn, org["id"], start, end), day=day.isoformat())
    for i, room in enumerate(rooms.values(), 1):
        findings += _check_devices(ctx, room, day.isoformat(), start, end, horizon, out)
        if progress is not None:
            progress(i, len(rooms))
    out.devices_checked = len(devices)
    _record(ctx, org["id"], findings, out, now)
    out.seconds = time.perf_counter() - t0
    log.info("reconcile.day", organization=org["name"], day=day.isoformat(), **{
        k: v for k, v in out.to_dict().items() if k not in ("organization", "days")})
    return out


def _energy_series(d: dict) -> int | None:
    s = d["series"]
    return s.get(ENERGY_TOTAL, s.get(POWER))


def _check_devices(ctx: AppContext, room: list[dict], day: str, start: int, end: int, horizon: int,
                   out: Summary) -> list[R.Finding]:
    """The findings of one classroom's devices; rebuilds their day's buckets."""
    msg_series = {d["asset_id"]: d["series"].get(POWER) or min(d["series"].values()) for d in room if d["series"]}
    energy = {d["asset_id"]: _energy_series(d) for d in room}
    all_series = sorted({s for d in room for s in d["series"].values()})
    with ctx.dbs.telemetry.connect() as conn:
        times = Q.reading_times(conn, sorted(msg_series.values()), start, horizon)
        flagged = Q.flagged_entries(conn, sorted(s for s in energy.values() if s), start, end,
                                    int(Flag.GAP | Flag.SWITCHED_OFF))
        arrivals = Q.message_arrivals(conn, [d["asset_id"] for d in room], start, end)
        tz = Q.series_timezones(conn, all_series)
    for d in room:  # a series the pipeline never saw has no zone row: the asset's
        for s in d["series"].values():
            tz.setdefault(s, d["timezone"])
    diffs = rebuild_buckets(ctx, all_series, start, end, tz)
    found: list[R.Finding] = []
    for d in room:
        who = dict(day=day, asset_id=d["asset_id"], esp32_name=d["esp32_name"], classroom_id=d["classroom_id"])
        if horizon > start and d["asset_id"] in msg_series:
            found += R.missing_heartbeats(times.get(msg_series[d["asset_id"]], np.zeros(0, np.int64)),
                                          start, horizon, **who)
        entries = flagged.get(energy[d["asset_id"]])
        if entries is not None:
            found += R.gaps(entries, **who)
            found += R.energy_while_off(entries, **who)
        arr = arrivals.get(d["asset_id"])
        if arr is not None:
            found += R.out_of_order_bursts(arr["ts"], arr["received_at"], **who)
        mine = set(d["series"].values())
        own = [x for x in diffs if x["series_id"] in mine]
        out.buckets_rewritten += len(own)
        found += R.aggregate_mismatch(own, start=start, end=end, **who)
    return found


def rebuild_buckets(ctx: AppContext, series: list[int], start: int, end: int, tz: dict[int, str]) -> list[dict]:
    """Rebuild the stored buckets of ``series`` over [start, end) from the ledger and
    return those that differed before (``domain.reconcile.bucket_differences``)."""
    if not series:
        return []
    with write_transaction(ctx.dbs.telemetry, lock_keys=series) as conn:
        before = Q.stored_buckets(conn, series, start, end)
        aggregate.recompute(conn, {s: (start, end) for s in series}, {s: tz[s] for s in series})
        after = Q.stored_buckets(conn, series, start, end)
    return R.bucket_differences(before, after)


def _record(ctx: AppContext, organization_id: int, findings: list[R.Finding], out: Summary, now: int) -> None:
    """Open an item for each finding not fixed; note the fixed ones as resolved items."""
    rows = []
    for f in findings:
        out.findings[f.kind] += 1
        row = {"organization_id": organization_id, "kind": f.kind, "asset_id": f.asset_id,
               "classroom_id": f.classroom_id, "esp32_name": f.esp32_name, "period_start": f.period_start,
               "period_end": f.period_end, "details": R.jsonable(dict(f.details, day=f.day)),
               "status": "open", "created_at": now, "dedup_key": R.dedup_key(f)}
        if f.fixable:
            out.fixed += 1
            row.update(status="resolved", resolved_at=now, resolved_by=RESOLVER,
                       resolution="fixed: the day's buckets were rebuilt from the ledger")
        rows.append(row)
    if not rows:
        return
    with write_transaction(ctx.dbs.telemetry) as conn:
        known = review_items_repo.existing_keys(conn, [r["dedup_key"] for r in rows])
        review_items_repo.add_items(conn, rows)
    for r in rows:
        if r["dedup_key"] not in known:
            if r["status"] == "open":
                out.items_opened += 1
            else:
                out.items_noted += 1


def reconcile(ctx: AppContext, *, day: date | None = None, organization: str | None = None,
              now: int | None = None) -> list[Summary]:
    """``wattline reconcile``: each organization's ``day`` (default: its yesterday)."""
    return [reconcile_day(ctx, org, day or yesterday(org["timezone"], now), now=now)
            for org in organizations(ctx, organization)]


def reconcile_work(ctx: AppContext, orgs: Sequence[dict], day: date | None = None, now: int | None = None):
    """``reconcile`` as a job's work: each organization's ``day`` (default: its
    yesterday), progress after each classroom; the result holds every summary."""

    async def work(report) -> dict:
        loop = asyncio.get_running_loop()
        done: list[dict] = []
        for org in orgs:
            d = day or yesterday(org["timezone"], now)

            def progress(i: int, n: int, org=org, d=d) -> None:  # called from the worker thread
                loop.call_soon_threadsafe(report, {"organization": org["name"], "day": d.isoformat(),
                                                   "classrooms_done": i, "classrooms": n,
                                                   "organizations_done": len(done), "organizations": len(orgs)})

            s = await asyncio.to_thread(reconcile_day, ctx, org, d, now=now, progress=progress)
            done.append(s.to_dict())
        return {"organizations": done}

    return work


async def run_reconcile_job(ctx: AppContext, *, day: date | None = None, organization: str | None = None,
                            now: int | None = None, on_progress: Callable[[dict], None] | None = None) -> dict:
    """Run reconciliation as a ``reconcile`` job of this process (the jobs table keeps
    its progress, result and time: the last run is the newest such row; ``on_progress``
    gets the progress too); returns the job row. ValueError for an unknown organization."""
    from wattline.jobs.runner import JobRunner, tee_progress

    orgs = await asyncio.to_thread(organizations, ctx, organization)
    runner = JobRunner(ctx)
    params = {"day": None if day is None else day.isoformat(), "organizations": [o["name"] for o in orgs]}
    job_id = await runner.start("reconcile", params, tee_progress(reconcile_work(ctx, orgs, day, now), on_progress))
    await runner.wait_all()
    return await asyncio.to_thread(runner.get, job_id)


def local_days(start: int, end: int, tz: str) -> list[date]:
    """The local dates of ``tz`` that [start, end) touches."""
    if end <= start:
        return []
    first, last = timeutil.local_date(start, tz), timeutil.local_date(end - 1, tz)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def recalculate_work(ctx: AppContext, org: dict, classroom_id: int, start: int, end: int):
    """The job of ``POST /api/power-analytics/recalculate``: the classroom's devices
    reconciled day by day over the organization-local days [start, end) touches;
    progress after each day, the summary as the result."""

    async def work(report) -> dict:
        days = local_days(start, end, org["timezone"])
        total = Summary(org["name"])
        for i, d in enumerate(days, 1):
            part = await asyncio.to_thread(reconcile_day, ctx, org, d, classroom_ids=[classroom_id])
            total.add(part)
            report({"days_done": i, "days": len(days), "day": d.isoformat(), **_short(total)})
        return total.to_dict()

    return work


def _short(s: Summary) -> dict:
    d = s.to_dict()
    return {k: d[k] for k in ("devices_checked", "findings", "fixed", "items_opened", "buckets_rewritten")}

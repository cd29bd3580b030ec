"""Seed 000's telemetry endpoints and the three chart series."""

from __future__ import annotations

import asyncio

from wattline import clock

from fastapi import APIRouter, Depends, Request, Response

from wattline.api import engine_defer
from wattline.api import schemas as S
from wattline.api.deps import Days, Hours, PlantId, ctx, latest_of, plant_or_404
from wattline.jobs.backfill import backfill_plant
from wattline.jobs.leases import plant_resource
from wattline.jobs.plants import PlantNotSyncable, load_plant
from wattline.jobs.runner import JobAlreadyRunning
from wattline.jobs.sync import sync_all
from wattline.security.deps import require_cron_or_role, require_role
from wattline.security.errors import ApiError
from wattline.store import plant_queries

router = APIRouter(prefix="/api/telemetry", tags=["telemetry"])
VIEWER = Depends(require_role("viewer"))
READ_ERRORS = S.errors(400, 401, 403, 404)
ACCEPTED = {202: {"description": "Job queued; follow its URL",
                  "headers": {"Location": {"description": "the job's URL (/api/jobs/{id})",
                                           "schema": {"type": "string"}}}}}


@router.get("/plant/{plant_id}", dependencies=[VIEWER], responses=READ_ERRORS)
def plant_telemetry(request: Request, plant_id: PlantId, hours: Hours = 24) -> S.Telemetry:
    """Seed 000's telemetry rows (energy, power, raw payload) over the last ``hours``."""
    p = plant_or_404(request, plant_id)
    now = clock.now_s()
    data = plant_queries.telemetry_rows(ctx(request).dbs.telemetry, p["series"], now - hours * 3600, now + 1)
    return S.Telemetry(plantId=plant_id, data=data, period=f"{hours}h", recordCount=len(data))


@router.get("/plant/{plant_id}/latest", dependencies=[VIEWER], responses=READ_ERRORS)
def plant_latest(request: Request, plant_id: PlantId) -> S.LatestValues:
    """The newest reading of each of the plant's points (from Redis when configured)."""
    p = plant_or_404(request, plant_id)
    return S.LatestValues(plantId=plant_id, values=latest_of(request, p))


@router.get("/plant/{plant_id}/charts/energy-15m", dependencies=[VIEWER], responses=READ_ERRORS)
def chart_energy(request: Request, plant_id: PlantId, days: Days = 31) -> S.EnergyChart:
    """Cumulative energy (MWh) at 15 minutes over the last ``days`` (default 31)."""
    p = plant_or_404(request, plant_id)
    now = clock.now_s()
    pts = plant_queries.series_points(ctx(request).dbs.telemetry, p["series"].get("energy_total"),
                                      now - days * 86400, now + 1, scale=1e-3)
    return S.EnergyChart(plantId=plant_id, timezone=p["timezone"], unit="MWh", days=days,
                         points=[{"ts": t, "total_energy_mwh": v} for t, v in pts])


@router.get("/plant/{plant_id}/charts/power", dependencies=[VIEWER], responses=READ_ERRORS)
def chart_power(request: Request, plant_id: PlantId, hours: Hours = 24) -> S.PowerChart:
    """Power (kW) over the last ``hours`` (default 24)."""
    p = plant_or_404(request, plant_id)
    now = clock.now_s()
    pts = plant_queries.series_points(ctx(request).dbs.telemetry, p["series"].get("power"),
                                      now - hours * 3600, now + 1)
    return S.PowerChart(plantId=plant_id, timezone=p["timezone"], unit="kW", hours=hours,
                        points=[{"ts": t, "power_kw": v} for t, v in pts])


@router.get("/plant/{plant_id}/charts/daily-energy", dependencies=[VIEWER], responses=READ_ERRORS)
def chart_daily(request: Request, plant_id: PlantId, days: Days = 31) -> S.DailyChart:
    """Energy per local day (kWh) over the last ``days`` (default 31), with quality and cost."""
    p = plant_or_404(request, plant_id)
    bars = plant_queries.plant_daily_bars(ctx(request).dbs.main_reader, ctx(request).dbs.telemetry, p, days,
                                          clock.now_s())
    return S.DailyChart(plantId=plant_id, timezone=p["timezone"], unit="kWh", days=days, bars=bars)


def _accepted(response: Response, job_id: str) -> S.JobAccepted:
    url = f"/api/jobs/{job_id}"
    response.headers["Location"] = url
    return S.JobAccepted(jobId=job_id, jobUrl=url, status="queued")


def _deferred(response: Response, engine_job: int) -> S.JobAccepted:
    url = engine_defer.engine_job_url(engine_job)
    response.headers["Location"] = url
    return S.JobAccepted(jobId=engine_defer.engine_job_id(engine_job), jobUrl=url, status="queued",
                         deferred=True, engineJobId=engine_job)


@router.post("/plant/{plant_id}/backfill", status_code=202, dependencies=[Depends(require_role("superadmin"))],
             responses={**ACCEPTED, **S.errors(400, 401, 403, 404, 409)})
async def start_backfill(request: Request, response: Response, plant_id: PlantId) -> S.JobAccepted:
    """Start a backfill of the plant from its start (resumable); 202 with the job's URL."""
    c = ctx(request)
    await asyncio.to_thread(plant_or_404, request, plant_id)  # database reads off the event loop
    try:
        await asyncio.to_thread(load_plant, c.dbs.main_reader, plant_id)
    except PlantNotSyncable as exc:
        raise ApiError(400, "not_syncable", str(exc), {"plant_id": plant_id}) from None
    runner = request.app.state.runner
    conflict = ApiError(409, "conflict", f"a backfill of plant {plant_id} is already running",
                        {"plant_id": plant_id})
    if engine_defer.engine_on(request):  # one plant, one worker at a time (its lock)
        jid = await engine_defer.defer(request, "backfill", lock=plant_resource(plant_id),
                                       queueing_lock=f"backfill:{plant_id}", plant_id=plant_id)
        if jid is None:
            raise ApiError(409, "conflict", f"a backfill of plant {plant_id} is already queued",
                           {"plant_id": plant_id})
        return _deferred(response, jid)

    async def work(report):
        result = await backfill_plant(c, plant_id, on_progress=lambda p: report(p.public()))
        return result.to_dict()

    try:  # the job key's unique index decides a race between two requests (or processes)
        job_id = await runner.start("backfill", {"plant_id": plant_id}, work, key=("backfill", plant_id))
    except JobAlreadyRunning:
        raise conflict from None
    return _accepted(response, job_id)


@router.post("/sync-all", status_code=202, dependencies=[Depends(require_cron_or_role("superadmin"))],
             responses={**ACCEPTED, **S.errors(401, 403, 409)})
async def start_sync_all(request: Request, response: Response) -> S.JobAccepted:
    """Start the daily sync of every plant now (the cron secret or a superadmin); 202."""
    c = ctx(request)
    runner = request.app.state.runner
    if engine_defer.engine_on(request):
        jid = await engine_defer.defer(request, "sync", lock="sync", queueing_lock="sync:None")
        if jid is None:
            raise ApiError(409, "conflict", "a sync of all plants is already queued")
        return _deferred(response, jid)

    async def work(report):
        return (await sync_all(c, on_progress=report)).to_dict()

    try:
        job_id = await runner.start("sync-all", {}, work, key=("sync-all", 0))
    except JobAlreadyRunning:
        raise ApiError(409, "conflict", "a sync of all plants is already running") from None
    return _accepted(response, job_id)

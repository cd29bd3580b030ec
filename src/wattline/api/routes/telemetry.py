"""Seed 000's telemetry endpoints and the three chart series."""

from __future__ import annotations

from wattline import clock


from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from wattline.api.deps import PlantId, ctx, plant_or_404
from wattline.jobs.backfill import backfill_plant
from wattline.jobs.plants import PlantNotSyncable, load_plant
from wattline.jobs.sync import sync_all
from wattline.security.deps import require_cron_or_role, require_role
from wattline.security.errors import ApiError
from wattline.store import plant_queries

router = APIRouter(prefix="/api/telemetry", tags=["telemetry"])
VIEWER = Depends(require_role("viewer"))


def _int_param(value: str | None, name: str, default: int, lo: int, hi: int) -> int:
    """Parse a bounded integer query parameter; a 400 names the allowed range."""
    if value is None:
        return default
    try:
        n = int(value)
    except ValueError:
        n = None
    if n is None or not lo <= n <= hi:
        raise ApiError(400, "invalid_parameter", f"{name} must be an integer from {lo} to {hi}",
                       {"parameter": name, "value": value, "min": lo, "max": hi})
    return n


@router.get("/plant/{plant_id}", dependencies=[VIEWER])
def plant_telemetry(request: Request, plant_id: PlantId, hours: str | None = Query(None)) -> dict:
    n = _int_param(hours, "hours", 24, 1, 744)
    p = plant_or_404(request, plant_id)
    now = clock.now_s()
    data = plant_queries.telemetry_rows(ctx(request).dbs.telemetry, p["series"], now - n * 3600, now + 1)
    return {"plantId": plant_id, "data": data, "period": f"{n}h", "recordCount": len(data)}


@router.get("/plant/{plant_id}/charts/energy-15m", dependencies=[VIEWER])
def chart_energy(request: Request, plant_id: PlantId, days: str | None = Query(None)) -> dict:
    """Cumulative energy (MWh) at 15 minutes over the last ``days`` (default 31)."""
    n = _int_param(days, "days", 31, 1, 366)
    p = plant_or_404(request, plant_id)
    now = clock.now_s()
    pts = plant_queries.series_points(ctx(request).dbs.telemetry, p["series"].get("energy_total"),
                                      now - n * 86400, now + 1, scale=1e-3)
    return {"plantId": plant_id, "timezone": p["timezone"], "unit": "MWh", "days": n,
            "points": [{"ts": t, "total_energy_mwh": v} for t, v in pts]}


@router.get("/plant/{plant_id}/charts/power", dependencies=[VIEWER])
def chart_power(request: Request, plant_id: PlantId, hours: str | None = Query(None)) -> dict:
    """Power (kW) over the last ``hours`` (default 24)."""
    n = _int_param(hours, "hours", 24, 1, 744)
    p = plant_or_404(request, plant_id)
    now = clock.now_s()
    pts = plant_queries.series_points(ctx(request).dbs.telemetry, p["series"].get("power"), now - n * 3600, now + 1)
    return {"plantId": plant_id, "timezone": p["timezone"], "unit": "kW", "hours": n,
            "points": [{"ts": t, "power_kw": v} for t, v in pts]}


@router.get("/plant/{plant_id}/charts/daily-energy", dependencies=[VIEWER])
def chart_daily(request: Request, plant_id: PlantId, days: str | None = Query(None)) -> dict:
    """Energy per local day (kWh) over the last ``days`` (default 31), with quality."""
    n = _int_param(days, "days", 31, 1, 366)
    p = plant_or_404(request, plant_id)
    sid = p["series"].get("energy_total") or p["series"].get("power")
    bars = plant_queries.daily_energy(ctx(request).dbs.telemetry, [sid] if sid else [], p["timezone"], n,
                                      clock.now_s())
    return {"plantId": plant_id, "timezone": p["timezone"], "unit": "kWh", "days": n, "bars": bars}


@router.post("/plant/{plant_id}/backfill", status_code=202,
             dependencies=[Depends(require_role("superadmin"))])
async def start_backfill(request: Request, plant_id: PlantId) -> JSONResponse:
    c = ctx(request)
    plant_or_404(request, plant_id)
    try:
        load_plant(c.dbs.main_reader, plant_id)
    except PlantNotSyncable as exc:
        raise ApiError(400, "not_syncable", str(exc), {"plant_id": plant_id}) from None
    runner = request.app.state.runner
    if runner.running("backfill", plant_id):
        raise ApiError(409, "conflict", f"a backfill of plant {plant_id} is already running",
                       {"plant_id": plant_id})

    async def work(report):
        def progress(p):
            report({"chunk": p.chunk, "totalChunks": p.total_chunks, "records": p.records,
                    "pausedUntil": p.paused_until})

        result = await backfill_plant(c, plant_id, on_progress=progress)
        return result.to_dict()

    job_id = runner.submit("backfill", {"plant_id": plant_id}, work, key=("backfill", plant_id))
    url = f"/api/jobs/{job_id}"
    return JSONResponse({"jobId": job_id, "jobUrl": url, "status": "queued"}, status_code=202,
                        headers={"Location": url})


@router.post("/sync-all", status_code=202, dependencies=[Depends(require_cron_or_role("superadmin"))])
async def start_sync_all(request: Request) -> JSONResponse:
    c = ctx(request)
    runner = request.app.state.runner
    if runner.running("sync-all", 0):
        raise ApiError(409, "conflict", "a sync of all plants is already running")

    async def work(report):
        return (await sync_all(c)).to_dict()

    job_id = runner.submit("sync-all", {}, work, key=("sync-all", 0))
    url = f"/api/jobs/{job_id}"
    return JSONResponse({"jobId": job_id, "jobUrl": url, "status": "queued"}, status_code=202,
                        headers={"Location": url})

"""Plants, work orders, sync logs and energy reports."""

from __future__ import annotations

from wattline import clock


from fastapi import APIRouter, Depends, Query, Request

from wattline.api.deps import OptionalId, PlantId, WorkOrderId, ctx, plant_or_404
from wattline.domain import timeutil
from wattline.pipeline import rollup
from wattline.domain.buckets import PERIODS
from wattline.security.deps import require_role
from wattline.security.errors import ApiError
from wattline.store import plant_queries, queries, registry

router = APIRouter(prefix="/api", tags=["plants"], dependencies=[Depends(require_role("viewer"))])
EXPECTED_INTERVAL_S = 900


def _plant_card(p: dict, s: dict | None, now: int) -> dict:
    return {
        "id": p["id"], "name": p["name"], "vendor": p["vendor_type"], "vendorPlantId": p["vendor_plant_id"],
        "timezone": p["timezone"], "summary": s,
        "health": plant_queries.health(s["last_update_time"] if s else None, EXPECTED_INTERVAL_S, now),
    }


@router.get("/plants")
def list_plants(request: Request) -> dict:
    c = ctx(request)
    sums = plant_queries.summaries(c.dbs.telemetry)
    now = clock.now_s()
    return {"plants": [_plant_card(p, sums.get(p["id"]), now) for p in plant_queries.plants(c.dbs.main_reader)]}


@router.get("/plants/{plant_id}")
def get_plant(request: Request, plant_id: PlantId) -> dict:
    p = plant_or_404(request, plant_id)
    card = _plant_card(p, plant_queries.summary(ctx(request).dbs.telemetry, plant_id), clock.now_s())
    card["workOrders"] = [w["id"] for w in plant_queries.work_orders(ctx(request).dbs.main_reader)
                          if plant_id in w["plant_ids"]]
    return card


@router.get("/work-orders")
def list_work_orders(request: Request) -> dict:
    c = ctx(request)
    return {"workOrders": [{"id": w["id"], "name": w["name"], "plantIds": w["plant_ids"],
                            "summary": plant_queries.work_order_summary(c.dbs.telemetry, w["id"])}
                           for w in plant_queries.work_orders(c.dbs.main_reader)]}


@router.get("/work-orders/{work_order_id}")
def get_work_order(request: Request, work_order_id: WorkOrderId, days: int = Query(31, ge=1, le=366)) -> dict:
    c = ctx(request)
    w = plant_queries.work_order(c.dbs.main_reader, work_order_id)
    if w is None:
        raise ApiError(404, "not_found", f"no work order with id {work_order_id}")
    sums = plant_queries.summaries(c.dbs.telemetry)
    now = clock.now_s()
    members = [plant_queries.plant(c.dbs.main_reader, pid) for pid in w["plant_ids"]]
    members = [m for m in members if m]
    bars = rollup.group_daily_bars(c.dbs.telemetry, c.dbs.main_reader, work_order_id, days, now)
    return {"id": w["id"], "name": w["name"],
            "plants": [_plant_card(m, sums.get(m["id"]), now) for m in members],
            "summary": plant_queries.work_order_summary(c.dbs.telemetry, work_order_id), "dailyBars": bars}


@router.get("/sync-logs")
def list_sync_logs(request: Request, plant_id: OptionalId = None, status: str | None = Query(None),
                   limit: int = Query(100, ge=1, le=1000)) -> dict:
    if status is not None and status not in ("success", "error", "partial"):
        raise ApiError(400, "invalid_parameter", "status must be success, error or partial")
    return {"logs": plant_queries.sync_logs(ctx(request).dbs.telemetry, plant_id=plant_id, status=status,
                                            limit=limit)}


@router.get("/energy")
def energy(request: Request, asset: str, point: str, period: str, from_: str = Query(..., alias="from"),
           to: str = Query(...)) -> dict:
    """The ``wattline energy --format json`` report over HTTP."""
    if period not in PERIODS:
        raise ApiError(400, "invalid_parameter", f"period must be one of {', '.join(PERIODS)}")
    try:
        start, end = timeutil.parse_instant(from_), timeutil.parse_instant(to)
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", str(exc)) from None
    if end <= start:
        raise ApiError(400, "invalid_parameter", "'to' must be after 'from'")
    c = ctx(request)
    with c.dbs.main_reader.connect() as conn:
        a = registry.asset_by_name(conn, asset)
        p = registry.point(conn, a["id"], point) if a else None
    if p is None:
        raise ApiError(404, "not_found", f"no point {point!r} on asset {asset!r}")
    if p["metric_type"] not in ("counter", "interval_energy", "power"):
        raise ApiError(400, "invalid_parameter", f"point {point!r} is a {p['metric_type']} series")
    rows = queries.energy_buckets(c.dbs.telemetry, p["id"], period, start, end, a["timezone"])
    return queries.energy_report(asset, point, period, a["timezone"], rows)

"""Plants, work orders, sync logs and energy reports."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from wattline import clock
from wattline.api import schemas as S
from wattline.api.deps import Days, OptionalId, PlantId, WorkOrderId, ctx, latest_of, plant_or_404
from wattline.domain import timeutil
from wattline.pipeline import rollup
from wattline.domain.buckets import PERIODS
from wattline.security.deps import require_role
from wattline.security.errors import ApiError
from wattline.store import cost_versions_repo, energy_costs, plant_queries, queries, registry

router = APIRouter(prefix="/api", tags=["plants"], dependencies=[Depends(require_role("viewer"))],
                   responses=S.errors(401, 403))
EXPECTED_INTERVAL_S = 900


def _plant_card(p: dict, s: dict | None, now: int) -> dict:
    return {
        "id": p["id"], "name": p["name"], "vendor": p["vendor_type"], "vendorPlantId": p["vendor_plant_id"],
        "timezone": p["timezone"], "summary": s,
        "health": plant_queries.health(s["last_update_time"] if s else None, EXPECTED_INTERVAL_S, now),
    }


@router.get("/plants")
def list_plants(request: Request) -> S.PlantList:
    """Every plant with its summary and health."""
    c = ctx(request)
    sums = plant_queries.priced_summaries(c.dbs.main_reader, c.dbs.telemetry, plant_queries.summaries(c.dbs.telemetry))
    now = clock.now_s()
    return S.PlantList(plants=[_plant_card(p, sums.get(p["id"]), now) for p in plant_queries.plants(c.dbs.main_reader)])


@router.get("/plants/{plant_id}", responses=S.errors(400, 404))
def get_plant(request: Request, plant_id: PlantId) -> S.PlantDetail:
    """One plant: summary (with the cost of each energy), health, its work orders and
    the newest reading of each point."""
    p = plant_or_404(request, plant_id)
    dbs = ctx(request).dbs
    summary = plant_queries.priced_summaries(dbs.main_reader, dbs.telemetry,
                                             {plant_id: plant_queries.summary(dbs.telemetry, plant_id)})[plant_id]
    card = _plant_card(p, summary, clock.now_s())
    card["workOrders"] = [w["id"] for w in plant_queries.work_orders(ctx(request).dbs.main_reader)
                          if plant_id in w["plant_ids"]]
    card["latest"] = latest_of(request, p)
    return S.PlantDetail(**card)


@router.get("/work-orders")
def list_work_orders(request: Request) -> S.WorkOrderList:
    """Every work order with its member plants and summary (cost: the sum of its plants')."""
    c = ctx(request)
    orders = plant_queries.work_orders(c.dbs.main_reader)
    in_orders = {p for w in orders for p in w["plant_ids"]}
    costs = plant_queries.summary_costs(c.dbs.main_reader, c.dbs.telemetry, {
        pid: s for pid, s in plant_queries.summaries(c.dbs.telemetry).items() if pid in in_orders})
    return S.WorkOrderList(workOrders=[
        {"id": w["id"], "name": w["name"], "plantIds": w["plant_ids"],
         "summary": plant_queries.priced_work_order_summary(
             plant_queries.work_order_summary(c.dbs.telemetry, w["id"]),
             [costs[p] for p in w["plant_ids"] if p in costs])}
        for w in orders])


@router.get("/work-orders/{work_order_id}", responses=S.errors(400, 404))
def get_work_order(request: Request, work_order_id: WorkOrderId, days: Days = 31) -> S.WorkOrderDetail:
    """One work order: its plants' cards, its summary and daily bars over ``days``
    (days of the work order's zone), each energy with its cost."""
    c = ctx(request)
    w = plant_queries.work_order(c.dbs.main_reader, work_order_id)
    if w is None:
        raise ApiError(404, "not_found", f"no work order with id {work_order_id}")
    raw = plant_queries.summaries(c.dbs.telemetry)
    now = clock.now_s()
    members = [plant_queries.plant(c.dbs.main_reader, pid) for pid in w["plant_ids"]]
    members = [m for m in members if m]
    mine = {m["id"]: raw.get(m["id"]) for m in members}
    pricing = energy_costs.plant_pricing(c.dbs.main_reader, c.dbs.telemetry, list(mine))
    costs = plant_queries.summary_costs(c.dbs.main_reader, c.dbs.telemetry, mine, pricing)
    sums = plant_queries.priced_summaries(c.dbs.main_reader, c.dbs.telemetry, mine, costs)
    tz = rollup.group_timezone(c.dbs.main_reader, work_order_id) or "UTC"
    bars = rollup.group_daily_bars(c.dbs.telemetry, c.dbs.main_reader, work_order_id, days, now)
    bars = plant_queries.bars_with_costs(bars, energy_costs.group_day_costs(
        c.dbs.main_reader, c.dbs.telemetry, work_order_id, plant_queries.bar_bounds(bars), tz=tz, pricing=pricing))
    summary = plant_queries.priced_work_order_summary(plant_queries.work_order_summary(c.dbs.telemetry, work_order_id),
                                                      [costs[m["id"]] for m in members if m["id"] in costs])
    return S.WorkOrderDetail(id=w["id"], name=w["name"], timezone=tz,
                             plants=[_plant_card(m, sums.get(m["id"]), now) for m in members],
                             summary=summary, dailyBars=bars)


@router.get("/sync-logs", responses=S.errors(400))
def list_sync_logs(request: Request, plant_id: OptionalId = None,
                   status: Annotated[Literal["success", "error", "partial"] | None, Query()] = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> S.SyncLogList:
    """Vendor sync logs, newest first, optionally of one plant and one status."""
    return S.SyncLogList(logs=plant_queries.sync_logs(ctx(request).dbs.telemetry, plant_id=plant_id,
                                                      status=status, limit=limit))


Period = Literal[PERIODS]  # type: ignore[valid-type]


@router.get("/energy", responses=S.errors(400, 404))
def energy(request: Request, asset: Annotated[str, Query(max_length=200)],
           point: Annotated[str, Query(max_length=80)], period: Annotated[Period, Query()],
           from_: Annotated[str, Query(alias="from", max_length=64, description="ISO-8601 with offset, or epoch s")],
           to: Annotated[str, Query(max_length=64, description="ISO-8601 with offset, or epoch s")]) -> S.PricedEnergyReport:
    """The ``wattline energy --format json`` report over HTTP: energy and cost per bucket
    with quality, and the totals (cost priced on read by the cost versions in effect)."""
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
    with c.dbs.main_reader.connect() as conn:
        tariff = cost_versions_repo.tariff_for_asset(conn, a["id"])
    rows = queries.energy_buckets(c.dbs.telemetry, p["id"], period, start, end, a["timezone"], tariff=tariff)
    return S.PricedEnergyReport(**queries.energy_report(asset, point, period, a["timezone"], rows))

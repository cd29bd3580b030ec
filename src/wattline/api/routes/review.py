"""Review items and on-demand recalculation (seed 002/004: reconciliation).

``GET /api/power-analytics/review-items`` lists what reconciliation found and could
not fix; ``POST .../review-items/{id}/resolve`` (admin) closes one with a note;
``POST /api/power-analytics/recalculate`` (admin) reconciles a classroom's range as a
job (202 with its URL; ``jobs.reconcile.recalculate_work``).
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from wattline import clock
from wattline.api import engine_defer
from wattline.api import schemas as S
from wattline.api.deps import MAX_ID, ctx
from wattline.domain import timeutil
from wattline.jobs.reconcile import recalculate_work
from wattline.security.deps import require_role
from wattline.security.errors import ApiError
from wattline.security.principal import Principal
from wattline.store import reconcile_queries as Q
from wattline.store import review_items_repo

router = APIRouter(prefix="/api/power-analytics", tags=["review"], responses=S.errors(401, 403))

Kind = Literal["missing_heartbeat", "gap", "out_of_order", "energy_while_off", "aggregate_mismatch",
               "unknown_device"]
MAX_RANGE_DAYS = 366


class ReviewItem(BaseModel):
    id: int
    kind: str
    status: str
    asset_id: int | None
    esp32_name: str | None
    device_id: str | None
    classroom: str | None
    period_start: str
    period_end: str
    details: dict[str, Any] | None
    created_at: str
    resolved_at: str | None
    resolved_by: str | None
    resolution: str | None


class ReviewItemList(BaseModel):
    items: list[ReviewItem]


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Annotated[str, Field(min_length=1, max_length=2000, description="why it is resolved")]


class ResolveOut(ReviewItem):
    changed: bool = Field(description="false: it was resolved already (nothing changed)")


class RecalculateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    classroom: Annotated[str, Field(min_length=1, max_length=200)]
    start: Annotated[str, Field(min_length=1, max_length=64, description="ISO-8601 with offset, epoch s, or a "
                                                                          "date (local midnight of the organization)")]
    end: Annotated[str, Field(min_length=1, max_length=64, description="exclusive; the same forms as start")]


class RecalculateAccepted(BaseModel):
    job: str = Field(description="the job's id")
    url: str = Field(description="the job's URL: poll it for progress and the result")
    deferred: bool = Field(False, description="queued on the job engine (a worker runs it)")
    engineJobId: int | None = None


def _public(rows: list[dict], request: Request) -> list[ReviewItem]:
    with ctx(request).dbs.main_reader.connect() as conn:
        labels = Q.device_labels(conn, [r["asset_id"] for r in rows])
        rooms = Q.group_names(conn, [r["classroom_id"] for r in rows])
    out = []
    for r in rows:
        lab = labels.get(r["asset_id"], {})
        out.append(ReviewItem(
            id=r["id"], kind=r["kind"], status=r["status"], asset_id=r["asset_id"], esp32_name=r["esp32_name"],
            device_id=lab.get("device_id"), classroom=rooms.get(r["classroom_id"]),
            period_start=timeutil.iso(r["period_start"]), period_end=timeutil.iso(r["period_end"]),
            details=r["details"], created_at=timeutil.iso(r["created_at"]),
            resolved_at=None if r["resolved_at"] is None else timeutil.iso(r["resolved_at"]),
            resolved_by=r["resolved_by"], resolution=r["resolution"]))
    return out


def _classroom(request: Request, name: str, principal: Principal) -> dict:
    with ctx(request).dbs.main_reader.connect() as conn:
        room = Q.classroom_by_name(conn, name)
        org = None if room is None else Q.organizations_list(conn)
    if room is None or (principal.organization_id is not None and room["organization_id"] != principal.organization_id):
        raise ApiError(404, "not_found", f"no classroom named {name!r}", {"classroom": name})
    room["organization"] = next(o for o in org if o["id"] == room["organization_id"])
    return room


@router.get("/review-items", responses=S.errors(400, 404))
def review_items(request: Request, principal: Annotated[Principal, Depends(require_role("viewer"))],
                 status: Annotated[Literal["open", "resolved"] | None, Query()] = None,
                 kind: Annotated[Kind | None, Query()] = None,
                 classroom: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 500) -> ReviewItemList:
    """Review items, newest first: ``status`` open or resolved (default both), ``kind``, ``classroom``."""
    room_id = None if classroom is None else _classroom(request, classroom, principal)["id"]
    with ctx(request).dbs.telemetry.connect() as conn:
        rows = review_items_repo.list_items(conn, organization_id=principal.organization_id, status=status,
                                            kind=kind, classroom_id=room_id, limit=limit)
    return ReviewItemList(items=_public(rows, request))


@router.post("/review-items/{item_id}/resolve", responses=S.errors(400, 404))
def resolve_item(request: Request, body: ResolveIn, item_id: Annotated[int, Path(ge=1, le=MAX_ID)],
                 principal: Annotated[Principal, Depends(require_role("admin"))]) -> ResolveOut:
    """Resolve an item with a note (admin); resolving it again changes nothing."""
    with ctx(request).dbs.telemetry.begin() as conn:
        item = review_items_repo.get(conn, item_id)
        if item is None or (principal.organization_id is not None
                            and item["organization_id"] != principal.organization_id):
            raise ApiError(404, "not_found", f"no review item {item_id}", {"id": item_id})
        item, changed = review_items_repo.resolve(conn, item_id, by=principal.name, note=body.note.strip() or body.note,
                                                  now=clock.now_s())
    return ResolveOut(**_public([item], request)[0].model_dump(), changed=changed)


EARLIEST, LATEST = 0, 7_258_118_400  # 1970-01-01 .. 2200-01-01 UTC: what the ledger can hold


def _instant(text: str, field: str, tz: str) -> int:
    try:
        ts = timeutil.parse_instant(text)
    except ValueError:
        try:
            ts = timeutil.local_midnight(date.fromisoformat(text), tz)
        except (ValueError, OverflowError):
            raise ApiError(400, "invalid_request", f"{field}: not an ISO-8601 instant with offset, epoch s or a "
                           f"date: {text[:64]!r}", {"field": field}) from None
    if not EARLIEST <= ts <= LATEST:
        raise ApiError(400, "invalid_request", f"{field}: outside 1970-2200", {"field": field})
    return ts


@router.post("/recalculate", status_code=202, responses=S.errors(400, 404, 409))
async def recalculate(request: Request, response: Response, body: RecalculateIn,
                      principal: Annotated[Principal, Depends(require_role("admin"))]) -> RecalculateAccepted:
    """Reconcile a classroom over [start, end) (admin): its devices' buckets rebuilt from
    the ledger day by day and review items opened for what cannot be fixed. 202 with
    the job's URL; progress (days done) and the summary are on the job."""
    room = await asyncio.to_thread(_classroom, request, body.classroom, principal)
    org = room["organization"]
    start, end = _instant(body.start, "start", org["timezone"]), _instant(body.end, "end", org["timezone"])
    if end <= start:
        raise ApiError(400, "invalid_request", "end must be after start", {"field": "end"})
    if end - start > MAX_RANGE_DAYS * 86400:
        raise ApiError(400, "invalid_request", f"at most {MAX_RANGE_DAYS} days at once", {"field": "end"})
    params = {"classroom": room["name"], "classroom_id": room["id"], "organization_id": org["id"],
              "start": start, "end": end, "requested_by": principal.name}
    if engine_defer.engine_on(request):  # one organization's reconciliation at a time (its lock)
        jid = await engine_defer.defer(request, "recalculate_classroom", lock=f"reconcile:{org['id']}",
                                       queueing_lock=f"recalculate:{room['id']}:{start}:{end}",
                                       organization=org["name"], classroom_id=room["id"], start=start, end=end,
                                       params=params)
        if jid is None:
            raise ApiError(409, "conflict", "the same recalculation is already queued",
                           {"classroom": room["name"]})
        url = engine_defer.engine_job_url(jid)
        response.headers["Location"] = url
        return RecalculateAccepted(job=engine_defer.engine_job_id(jid), url=url, deferred=True, engineJobId=jid)
    job_id = await request.app.state.runner.start("recalculate", params,
                                                  recalculate_work(ctx(request), org, room["id"], start, end))
    url = f"/api/jobs/{job_id}"
    response.headers["Location"] = url
    return RecalculateAccepted(job=job_id, url=url)


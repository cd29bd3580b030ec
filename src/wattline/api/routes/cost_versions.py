"""Cost versions over HTTP (seed 002/004: ``/api/power-analytics/cost-versions``).

Costs are priced on read from the ledger (``store/energy_costs.py``): a version added
here re-prices every figure it covers at once. Adding one also starts a
``recalculate`` job (``jobs.reprice``) over the range and scope it covers, which
verifies (rebuilds) their buckets and reports the entries covered and their cost
before and after; the answer carries the job's URL.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from wattline.api import schemas as S
from wattline.api.deps import MAX_ID, ctx
from wattline.domain import timeutil
from wattline.domain.cost import rate_micro_per_kwh
from wattline.api.engine_defer import engine_job_url
from wattline.jobs.dispatch import defer_now, engine_configured
from wattline.jobs.reprice import job_params, reprice_work
from wattline.security.deps import require_role
from wattline.security.errors import ApiError, error_response
from wattline.security.principal import Principal
from wattline.store import cost_versions_repo as repo

router = APIRouter(prefix="/api/power-analytics", tags=["cost"], responses=S.errors(401, 403))

Id = Annotated[int | None, Field(ge=1, le=MAX_ID)]


class CostVersionIn(BaseModel):
    """A new cost version; at most one of ``classroom``, ``group_id``, ``asset_id``,
    ``organization_id`` (none: global)."""

    model_config = ConfigDict(extra="forbid")

    cost_per_kwh: Annotated[Decimal, Field(ge=0, le=1_000_000, decimal_places=6, allow_inf_nan=False,
                                           description="currency units per kWh, e.g. 7.50 (up to 6 decimals)")]
    effective_from: Annotated[str, Field(min_length=1, max_length=64,
                                         description="ISO-8601 with offset, or epoch s: the first instant it prices")]
    classroom: Annotated[str | None, Field(min_length=1, max_length=200, description="a classroom's name")] = None
    group_id: Id = None
    asset_id: Id = None
    organization_id: Id = None
    currency: Annotated[str | None, Field(pattern=r"^[A-Z]{3}$", description=(
        "ISO 4217; default: the newest version's of the same organization, else INR"))] = None
    notes: Annotated[str | None, Field(max_length=2000)] = None


class CostVersionAdded(S.CostVersionCreated):
    job: str = Field(description="URL of the recalculation job over the range and scope the version covers")
    deferred: bool = Field(False, description="queued on the job engine (a worker runs it)")
    engineJobId: int | None = None


@router.get("/cost-versions", dependencies=[Depends(require_role("viewer"))])
def list_cost_versions(request: Request) -> S.CostVersionList:
    """Every cost version, oldest effective instant first."""
    with ctx(request).dbs.main_reader.connect() as conn:
        return S.CostVersionList(versions=[repo.public(v) for v in repo.list_versions(conn)])


@router.post("/cost-versions", status_code=201,
             responses={200: {"model": CostVersionAdded, "description": "The same version was already stored"},
                        **S.errors(400)})
def add_cost_version(request: Request, response: Response, body: CostVersionIn,
                     principal: Annotated[Principal, Depends(require_role("admin"))]) -> CostVersionAdded:
    """Add a cost version (admin). The most specific scope in effect prices each
    instant (asset > group > organization > global); an entry crossing a change of
    rate is split at it. Bad input is a 400 and stores nothing. The answer's ``job``
    is the recalculation job's URL (also when the version was stored already: the
    job then changes nothing and reports the same figures)."""
    try:
        micro = rate_micro_per_kwh(body.cost_per_kwh)
    except ValueError as exc:
        raise ApiError(400, "invalid_request", str(exc), {"field": "cost_per_kwh"}) from None
    try:
        effective = timeutil.parse_instant(body.effective_from)
    except ValueError as exc:
        raise ApiError(400, "invalid_request", f"effective_from: {exc}", {"field": "effective_from"}) from None
    try:
        with ctx(request).dbs.main.begin() as conn:
            ref = repo.resolve_scope(conn, group=body.classroom, group_kind="classroom" if body.classroom else None,
                                     group_id=body.group_id, asset_id=body.asset_id,
                                     organization_id=body.organization_id)
            version, created = repo.add(conn, rate_micro_per_kwh=micro, effective_from=effective, ref=ref,
                                        currency=body.currency, notes=body.notes, created_by=principal.name)
    except repo.CostVersionError as exc:
        raise ApiError(400, "invalid_request", str(exc), {"field": exc.parameter}) from None
    if not created:
        response.status_code = 200
    c = ctx(request)
    if engine_configured(c.settings):  # a worker reprices (this route runs in a worker thread: asyncio.run)
        vid = int(version["id"])
        jid = defer_now("reprice", lock="reprice", queueing_lock=f"reprice:{vid}", settings=c.settings,
                        cost_version_id=vid, params=job_params(version))
        # None: the same version's repricing is already queued, which covers this request too
        return CostVersionAdded(**repo.public(version), created=created, repricing="on_read",
                                job="/api/admin/engine-jobs?status=todo" if jid is None else engine_job_url(jid),
                                deferred=True, engineJobId=jid)
    job_id = request.app.state.runner.submit("recalculate", job_params(version), reprice_work(c, int(version["id"])))
    return CostVersionAdded(**repo.public(version), created=created, repricing="on_read", job=f"/api/jobs/{job_id}")


@router.api_route("/cost-versions", methods=["PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"], include_in_schema=False)
def cost_versions_other_methods() -> Response:
    """405 naming both methods of the path: Starlette's own 405 lists only those of the
    first route matching the path (GET here), which would hide the POST."""
    return error_response(405, "method_not_allowed", "Method Not Allowed", None, {"Allow": "GET, POST"})

"""Monitored systems (seed 003): the caller's systems, poll sessions, the poll cron.

* ``GET /api/data/systems``: the systems the caller may read (owned, shared, or all
  for an admin), with their effective status and last successful poll.
* ``GET /api/data/systems/{id}``: one system and its points (404 when the caller may
  not read it: a foreign system's existence is not revealed).
* ``GET /api/admin/sessions?systemId=&success=&since=`` (admin): poll sessions, newest
  first, with success rate and mean duration per vendor.
* ``POST /api/cron/poll`` (the cron secret or an admin): one polling tick; waits for
  the polls it started.

Every system-scoped route asks :func:`wattline.security.system_access.can_read_system`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from wattline import system_admin
from wattline.api import schemas as S
from wattline.api.deps import MAX_ID, ctx
from wattline.domain import timeutil
from wattline.security.deps import require_cron_or_role, require_role
from wattline.security.errors import ApiError
from wattline.security.principal import Principal
from wattline.security.roles import role_at_least
from wattline.security.system_access import can_read_system
from wattline.store import sessions_repo, systems_repo, users_repo

router = APIRouter(tags=["systems"], responses=S.errors(401, 403))
SystemIdQ = Annotated[int | None, Query(alias="systemId", ge=1, le=MAX_ID)]


class SystemOut(BaseModel):
    id: int
    displayName: str
    alias: str
    owner: str
    vendorType: str
    vendorSiteId: str
    timezone: str
    status: str = Field(description="active | paused | error (after 3 failed polls in a row)")
    isDefault: bool
    sharedWith: list[str]
    lastSuccessAt: str | None = Field(description="end of the last successful poll (ISO-8601 UTC)")


class SystemList(BaseModel):
    systems: list[SystemOut]


class PointOut(BaseModel):
    seriesId: int
    key: str
    metricType: str
    unit: str
    subsystem: str | None
    type: str | None
    label: str | None
    displayOrder: int
    visible: bool
    active: bool


class SystemDetail(SystemOut):
    points: list[PointOut]


class SessionOut(BaseModel):
    id: int
    systemId: int
    vendorType: str
    cause: str
    startedAt: str
    durationMs: int
    success: bool
    vendorErrorCode: str | None
    error: str | None
    numReadings: int
    rawEventId: int | None = Field(description="the response, as a raw event")


class VendorSessionStats(BaseModel):
    vendorType: str
    sessions: int
    successRate: float = Field(description="share of successful sessions, 0..1")
    meanDurationMs: float


class SessionList(BaseModel):
    sessions: list[SessionOut]
    byVendor: list[VendorSessionStats]


class PollErrorOut(BaseModel):
    systemId: int
    vendor: str
    error: str | None


class PollReportOut(BaseModel):
    polled: int
    succeeded: int
    failed: int
    readings: int
    skippedRunning: list[int] = Field(description="systems whose previous poll still ran (skipped, not queued)")
    notDue: int
    errors: list[PollErrorOut]
    deferred: bool = False  # true (202): one tick queued on the job engine; the counts are then 0
    engineJobId: int | None = Field(None, description="the engine's job; null when a tick is already queued")


def _iso_ms(ms: int | None) -> str | None:
    return None if ms is None else timeutil.iso(ms // 1000)


def _public(r: dict) -> dict:
    return dict(id=r["id"], displayName=r["display_name"], alias=r["alias"], owner=r["owner"],
                vendorType=r["vendor_type"], vendorSiteId=r["vendor_site_id"], timezone=r["timezone"],
                status=r["status"], isDefault=bool(r["is_default"]), sharedWith=sorted(r["shared_with"]),
                lastSuccessAt=_iso_ms(r.get("last_success_ms")))


def _visible(request: Request, principal: Principal) -> list[dict]:
    c = ctx(request)
    with c.dbs.main_reader.connect() as conn:
        if principal.kind != "cron" and role_at_least(principal.role, "admin"):
            rows = system_admin.systems_with_status(conn, c.dbs.telemetry)
            return [r for r in rows if can_read_system(principal, r)]  # an organization's admin: its own
        user = users_repo.by_username(conn, principal.name) if principal.kind == "user" else None
        if user is None:  # a token names no user: it owns nothing
            return []
        rows = system_admin.systems_with_status(conn, c.dbs.telemetry, visible_to_user_id=user["id"])
    return [r for r in rows if can_read_system(principal, r)]


@router.get("/api/data/systems")
def my_systems(request: Request, principal: Annotated[Principal, Depends(require_role("viewer"))]) -> SystemList:
    """The systems the caller may read: owned, shared with them, or every one for an admin."""
    return SystemList(systems=[SystemOut(**_public(r)) for r in _visible(request, principal)])


@router.get("/api/data/systems/{system_id}", responses=S.errors(400, 404))
def system_detail(request: Request, principal: Annotated[Principal, Depends(require_role("viewer"))],
                  system_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> SystemDetail:
    """One system with its points by display order (404 if the caller may not read it)."""
    c = ctx(request)
    with c.dbs.main_reader.connect() as conn:
        s = systems_repo.system(conn, system_id)
        if s is None or not can_read_system(principal, s):
            raise ApiError(404, "not_found", f"no system with id {system_id}", {"system_id": system_id})
        pts = systems_repo.system_points(conn, system_id)
    health = sessions_repo.poll_states(c.dbs.telemetry, [system_id]).get(system_id, {})
    s["last_success_ms"] = health.get("last_success_ms")
    s["status"] = system_admin.rules.effective_status(s["status"], health.get("consecutive_failures") or 0)
    return SystemDetail(**_public(s), points=[PointOut(
        seriesId=p["id"], key=p["key"], metricType=p["metric_type"], unit=p["unit"], subsystem=p["subsystem"],
        type=p["point_type"], label=p["label"], displayOrder=p["display_order"], visible=bool(p["visible"]),
        active=bool(p["active"])) for p in pts])


@router.get("/api/admin/sessions", dependencies=[Depends(require_role("admin"))], responses=S.errors(400))
def admin_sessions(request: Request, system_id: SystemIdQ = None,
                   success: Annotated[bool | None, Query()] = None,
                   since: Annotated[str | None, Query(max_length=64, description="ISO-8601 or epoch s")] = None,
                   limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> SessionList:
    """Poll sessions, newest first, filtered by system, outcome and start time; success
    rate and mean duration per vendor over the same filter."""
    since_ms = None
    if since is not None:
        try:
            since_ms = timeutil.parse_instant(since) * 1000
        except ValueError as exc:
            raise ApiError(400, "invalid_parameter", f"since: {exc}", {"parameter": "since"}) from None
    ids = None if system_id is None else [system_id]
    tel = ctx(request).dbs.telemetry
    rows = sessions_repo.list_sessions(tel, system_ids=ids, success=success, since_ms=since_ms, limit=limit)
    stats = sessions_repo.vendor_stats(tel, system_ids=ids, success=success, since_ms=since_ms)
    return SessionList(
        sessions=[SessionOut(id=r["id"], systemId=r["system_id"], vendorType=r["vendor_type"], cause=r["cause"],
                             startedAt=_iso_ms(r["started_at_ms"]), durationMs=r["duration_ms"],
                             success=bool(r["success"]), vendorErrorCode=r["vendor_error_code"], error=r["error"],
                             numReadings=r["num_readings"], rawEventId=r["raw_event_id"]) for r in rows],
        byVendor=[VendorSessionStats(vendorType=s["vendor_type"], sessions=s["sessions"],
                                     successRate=(s["successes"] or 0) / s["sessions"],
                                     meanDurationMs=float(s["mean_duration_ms"] or 0.0)) for s in stats])


@router.post("/api/cron/poll", responses={202: {"model": PollReportOut, "description": "Queued on the job engine"},
                                           **S.errors(400)})
async def cron_poll(request: Request, response: Response,
                    principal: Annotated[Principal, Depends(require_cron_or_role("admin"))],
                    force: Annotated[bool, Query(description="poll every active system, due or not")] = False
                    ) -> PollReportOut:
    """One polling tick (the cron secret: cause CRON; an admin: ADMIN); waits for its polls.
    With the job engine: 202, one tick queued for a worker (not waited for; the workers
    also poll every minute by themselves)."""
    from wattline.api import engine_defer
    from wattline.jobs.poll import Poller

    if engine_defer.engine_on(request):
        cause = "CRON" if principal.kind == "cron" else "ADMIN"
        kw = {"cause": cause, "force": True} if force else {}  # a plain tick: the same job as the CLI's
        jid = await engine_defer.defer(request, "poll", lock="poll", queueing_lock="poll:force" if force else "poll",
                                       **kw)
        response.status_code = 202
        return PollReportOut(polled=0, succeeded=0, failed=0, readings=0, skippedRunning=[], notDue=0, errors=[],
                             deferred=True, engineJobId=jid)

    poller = getattr(request.app.state, "poller", None)
    if poller is None:  # an app built without its lifespan; normally the scheduler's poller
        poller = request.app.state.poller = Poller(ctx(request))
    report = await poller.poll(cause="CRON" if principal.kind == "cron" else "ADMIN", force=force)
    return PollReportOut(**report.to_dict())

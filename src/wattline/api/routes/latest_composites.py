"""Latest values of a system or a composite, and composites (seed 003).

* ``GET /api/data/latest?systemId=N`` or ``?composite=<slug or id>``
  [``&includeMetadata=true``]: the newest value of each visible, active point,
  ``{"success": true, "data": {"<key>": {"value", "timestamp", "unit"}}, "metadata":
  {...}}``, from the latest-value store (Redis when configured, else the database;
  ``metadata.source`` says which answered). A composite's values are its members'
  rolled up by the group rules (:func:`wattline.domain.latest.roll_up_latest`: power
  and energy add up, state of charge is averaged by battery capacity). With Redis a
  composite's roll-up is cached (``latest:composite:{id}``) and dropped whenever a
  member's values are written (through ``subscriptions:system:{id}``), so it is right
  right after a member's poll.
* ``GET /api/composite`` (the composites the caller may read), ``POST /api/composite``
  ``{slug, name, description?, favourite?, memberIds}`` (a user or above; every member
  readable by the caller), ``GET|PATCH|DELETE /api/composite/{id}``.

Access: a system's latest needs ``can_read_system`` (404 otherwise); a composite is
readable by its owner, by admins and by users who may read every member (404
otherwise) and writable by its owner and admins (403 for one who may only read).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from wattline import system_admin
from wattline.api import schemas as S
from wattline.api.composite_access import readable_composite
from wattline.api.deps import MAX_ID, ctx
from wattline.domain.systems import ALIAS_PATTERN
from wattline.domain.latest import MemberPoint, composite_signature, roll_up_latest
from wattline.domain.point_display import display_unit
from wattline.security.deps import require_role
from wattline.security.errors import ApiError, error_response
from wattline.security.principal import Principal
from wattline.security.system_access import can_read_system
from wattline.store import composites_repo, systems_repo

router = APIRouter(tags=["latest", "composites"], responses=S.errors(401, 403))
# documented, checked by the route (a refused slug is the 422 invalid_composite, not a 400)
_SLUG = {"pattern": ALIAS_PATTERN, "maxLength": 63}
_422 = {422: {"model": S.ErrorBody, "description": "Refused input (code invalid_composite): nothing written"}}
Viewer = Annotated[Principal, Depends(require_role("viewer"))]
CompositeId = Annotated[int, Path(ge=1, le=MAX_ID, description="the composite's id")]
MemberId = Annotated[int, Field(ge=1, le=MAX_ID)]


class PointValue(BaseModel):
    value: float
    timestamp: int = Field(description="reading time, UTC epoch seconds")
    unit: str = Field(description="W for *_w power keys, else the canonical unit (kW, kWh, %...)")


class PointMeta(BaseModel):
    label: str | None
    subsystem: str | None
    type: str | None
    metricType: str


class LatestMetadata(BaseModel):
    systemId: int | None = Field(default=None, description="for a system")
    compositeId: int | None = Field(default=None, description="for a composite")
    displayName: str
    lastUpdate: int | None = Field(description="newest value's time, UTC epoch s; null without any")
    source: Literal["redis", "database"] = Field(description="what answered: the cache, or the database")
    members: list[int] | None = Field(default=None, description="member system ids, in order (composites)")
    points: dict[str, PointMeta] | None = Field(default=None, description="with includeMetadata=true")


class LatestOut(BaseModel):
    success: bool = True
    data: dict[str, PointValue] = Field(description="newest value per point key, in display order")
    metadata: LatestMetadata


class CompositeOut(BaseModel):
    id: int
    slug: str
    name: str
    description: str | None
    favourite: bool
    owner: str | None = Field(description="owner's username (null: none, e.g. made by the CLI)")
    memberIds: list[int] = Field(description="member system ids, in display order")


class CompositeList(BaseModel):
    success: bool = True
    composites: list[CompositeOut]


class CompositeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slug: str = Field(min_length=1, max_length=64, json_schema_extra=_SLUG)
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    favourite: bool = False
    memberIds: list[MemberId] = Field(min_length=1, max_length=100)


class CompositePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slug: str | None = Field(default=None, min_length=1, max_length=64, json_schema_extra=_SLUG)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000, description="null clears it")
    favourite: bool | None = None
    memberIds: list[MemberId] | None = Field(default=None, min_length=1, max_length=100)


class Deleted(BaseModel):
    success: bool = True
    deleted: int


def _public(c: dict) -> CompositeOut:
    return CompositeOut(id=c["id"], slug=c["slug"], name=c["name"], description=c["description"],
                        favourite=bool(c["favourite"]), owner=c["owner"], memberIds=list(c["member_ids"]))


def _readable(conn, principal: Principal, c: dict) -> bool:
    members = [s for s in (systems_repo.system(conn, m) for m in c["member_ids"]) if s is not None]
    return system_admin.can_read_composite(principal, c, members)


def _composite_for(conn, principal: Principal, ref: str | int) -> dict:
    """The composite named by id or slug that the caller may read (with ``members``), else 404."""
    c = readable_composite(conn, principal, ref)
    if c is None:
        raise ApiError(404, "not_found", f"no composite {ref}", {"composite": str(ref)})
    return c


def _refresh_subscriptions(request: Request, system_ids) -> None:
    refresh = getattr(ctx(request).latest_values, "refresh_subscriptions", None)
    if refresh is not None:  # Redis: the composites each system feeds
        refresh(system_ids)


def _refused(exc: system_admin.RegistryError) -> ApiError:
    if isinstance(exc, system_admin.UnknownMembers):
        return ApiError(404, "not_found", str(exc), {"memberIds": exc.ids})
    if isinstance(exc, system_admin.CompositeConflict):
        return ApiError(409, "conflict", str(exc), None)
    if isinstance(exc, system_admin.UnknownComposite):
        return ApiError(404, "not_found", str(exc), None)
    return ApiError(422, "invalid_composite", str(exc), None)


# -- latest values ------------------------------------------------------------------


def _wanted(member_ids: list[int], pts: list[dict]) -> dict[int, list[int]]:
    wanted: dict[int, list[int]] = {m: [] for m in member_ids}
    for p in pts:
        wanted[p["system_id"]].append(p["series_id"])
    return wanted


def _composite_latest(store, composite_id: int, member_ids: list[int], pts: list[dict],
                      caps: dict[int, float | None]) -> tuple[dict[str, PointValue], str]:
    """A composite's rolled-up values and what answered. With Redis, its cached roll-up
    (``latest:composite:{id}``, dropped by every write of a member's values through the
    member's subscription set) when it is still good, else the members' values rolled up
    and cached for the next reader."""
    members = [MemberPoint(p["system_id"], p["series_id"], p["key"], p["metric_type"], p["unit"]) for p in pts]
    cached = getattr(store, "cached_composite", None)
    sig, token = composite_signature(member_ids, members, caps), None
    if cached is not None:
        held, token = cached(composite_id, sig)
        if held is not None:
            return {k: PointValue(**v) for k, v in held.items()}, "redis"
    read = store.read_assets(_wanted(member_ids, pts))
    data: dict[str, PointValue] = {}
    for key, r in roll_up_latest(members, read.values, caps).items():
        factor, unit = display_unit(key, next(p["metric_type"] for p in pts if p["key"] == key))
        data[key] = PointValue(value=r.value * factor, timestamp=r.ts, unit=unit)
    if token is not None and read.source == "redis":  # never cache what the database answered for a down Redis
        store.store_composite(composite_id, token, sig, {k: v.model_dump() for k, v in data.items()})
    return data, read.source


@router.get("/api/data/latest", response_model_exclude_unset=True, responses=S.errors(400, 404))
def latest(request: Request, principal: Viewer,
           system_id: Annotated[int | None, Query(alias="systemId", ge=1, le=MAX_ID)] = None,
           composite: Annotated[str | None, Query(min_length=1, max_length=64,
                                                  description="a composite's slug or id")] = None,
           include_metadata: Annotated[bool, Query(alias="includeMetadata")] = False) -> LatestOut:
    """The newest value of each visible, active point of a system, or of a composite
    (its members' values rolled up), with where it came from."""
    if (system_id is None) == (composite is None):
        raise ApiError(400, "invalid_parameter", "give exactly one of systemId and composite",
                       {"parameter": "systemId|composite"})
    c = ctx(request)
    with c.dbs.main_reader.connect() as conn:
        if system_id is not None:
            s = systems_repo.system(conn, system_id)
            if s is None or not can_read_system(principal, s):
                raise ApiError(404, "not_found", f"no system with id {system_id}", {"system_id": system_id})
            member_ids, name, comp = [system_id], s["display_name"], None
        else:
            comp = _composite_for(conn, principal, composite)
            member_ids = [m["id"] for m in comp["members"]]
            name = comp["name"]
        pts = composites_repo.member_points(conn, member_ids)
        caps = composites_repo.capacities_kwh(conn, member_ids) if comp is not None else {}
    if comp is None:
        read = c.latest_values.read_assets(_wanted(member_ids, pts))
        data: dict[str, PointValue] = {}
        for p in pts:
            v = read.values.get(p["series_id"])
            if v is not None:
                factor, unit = display_unit(p["key"], p["metric_type"])
                data[p["key"]] = PointValue(value=v.value * factor, timestamp=v.ts, unit=unit)
        source = read.source
    else:
        data, source = _composite_latest(c.latest_values, comp["id"], member_ids, pts, caps)
    extra: dict = {"systemId": system_id} if comp is None else {"compositeId": comp["id"], "members": member_ids}
    if include_metadata:
        first: dict[str, dict] = {}
        for p in pts:
            first.setdefault(p["key"], p)
        extra["points"] = {k: PointMeta(label=first[k]["label"], subsystem=first[k]["subsystem"],
                                        type=first[k]["point_type"], metricType=first[k]["metric_type"])
                           for k in data}
    meta = LatestMetadata(displayName=name, lastUpdate=max((v.timestamp for v in data.values()), default=None),
                          source=source, **extra)
    return LatestOut(success=True, data=data, metadata=meta)


# -- composites -----------------------------------------------------------------------


@router.get("/api/composite")
def list_composites(request: Request, principal: Viewer) -> CompositeList:
    """The composites the caller may read (owned, made only of systems they may read,
    or every one for an admin), by id."""
    with ctx(request).dbs.main_reader.connect() as conn:
        rows = [c for c in composites_repo.list_composites(conn) if _readable(conn, principal, c)]
    return CompositeList(composites=[_public(c) for c in rows])


@router.post("/api/composite", status_code=201,
             responses={200: {"model": CompositeOut, "description": "The same composite existed already"},
                        **S.errors(400, 404, 409), **_422})
def create_composite(request: Request, response: Response, body: CompositeIn,
                     principal: Annotated[Principal, Depends(require_role("user"))]) -> CompositeOut:
    """A composite owned by the caller (a token names no user: it owns nothing, so an
    admin token makes one without owner). Every member must be a system the caller may
    read (404 otherwise). The same composite posted again answers 200 and changes
    nothing; a slug or name taken by another: 409."""
    owner = principal.name if principal.kind == "user" else None
    c = ctx(request)
    with c.dbs.main_reader.connect() as conn:
        for same in composites_repo.by_slug(conn, body.slug):
            if (same["name"], same["description"], bool(same["favourite"]), same["owner"], same["member_ids"]) == (
                    body.name.strip(), body.description, body.favourite, owner,
                    list(dict.fromkeys(body.memberIds))) and _readable(conn, principal, same):
                response.status_code = 200
                return _public(same)
    try:
        with c.dbs.main.begin() as conn:
            gid = system_admin.add_composite(conn, body.slug, body.name, body.memberIds, owner=owner,
                                             description=body.description, favourite=body.favourite,
                                             creator=principal)
            made = composites_repo.get(conn, gid)
    except system_admin.RegistryError as exc:
        raise _refused(exc) from None
    _refresh_subscriptions(request, made["member_ids"])
    return _public(made)


@router.get("/api/composite/{composite_id}", responses=S.errors(400, 404))
def get_composite(request: Request, principal: Viewer, composite_id: CompositeId) -> CompositeOut:
    """One composite (404 if the caller may not read it)."""
    with ctx(request).dbs.main_reader.connect() as conn:
        return _public(_composite_for(conn, principal, composite_id))


def _writable(request: Request, principal: Principal, composite_id: int) -> dict:
    with ctx(request).dbs.main_reader.connect() as conn:
        comp = _composite_for(conn, principal, composite_id)  # 404 when not even readable
    if not system_admin.can_write_composite(principal, comp):
        raise ApiError(403, "forbidden", "only the composite's owner or an admin may change it",
                       {"composite": composite_id})
    return comp


@router.patch("/api/composite/{composite_id}", responses={**S.errors(400, 404, 409), **_422})
def patch_composite(request: Request, principal: Viewer, composite_id: CompositeId,
                    body: CompositePatch) -> CompositeOut:
    """Change the slug, name, description (null clears it), favourite flag or members
    (new members must be systems the caller may read). Only the owner or an admin."""
    _writable(request, principal, composite_id)
    fields = body.model_fields_set
    try:
        with ctx(request).dbs.main.begin() as conn:
            before, after = system_admin.update_composite(
                conn, composite_id, editor=principal, slug=body.slug, name=body.name,
                description=body.description, favourite=body.favourite, member_ids=body.memberIds,
                clear_description="description" in fields and body.description is None)
    except system_admin.RegistryError as exc:
        raise _refused(exc) from None
    if before["member_ids"] != after["member_ids"]:
        _refresh_subscriptions(request, set(before["member_ids"]) | set(after["member_ids"]))
    return _public(after)


@router.delete("/api/composite/{composite_id}", responses=S.errors(400, 404))
def delete_composite(request: Request, principal: Viewer, composite_id: CompositeId) -> Deleted:
    """Delete a composite (its systems and their data stay). Only the owner or an admin."""
    _writable(request, principal, composite_id)
    try:
        with ctx(request).dbs.main.begin() as conn:
            before = system_admin.delete_composite(conn, composite_id)
    except system_admin.RegistryError as exc:
        raise _refused(exc) from None
    _refresh_subscriptions(request, before["member_ids"])
    return Deleted(deleted=composite_id)


# ------------------------------------------------------------------ other methods
# a 405 naming every method of the path (Starlette's own lists only the first route's)


def _method_not_allowed(allow: str):
    return error_response(405, "method_not_allowed", "Method Not Allowed", None, {"Allow": allow})


@router.api_route("/api/composite", methods=["PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"], include_in_schema=False)
def composites_other_methods():
    return _method_not_allowed("GET, POST")


@router.api_route("/api/composite/{composite_id}", methods=["POST", "PUT", "OPTIONS", "TRACE"],
                  include_in_schema=False)
def composite_other_methods():
    return _method_not_allowed("GET, PATCH, DELETE")

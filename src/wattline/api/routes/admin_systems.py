"""Administration of monitored systems (seed 003), their points, users and shares.

* ``GET /api/admin/systems`` (admin): every system with its effective status, the end
  of its last successful poll and ``freshnessS`` (seconds since then; null if never),
  and its number of points.
* ``POST /api/admin/systems/{id}/settings`` (admin): ``displayName``, ``alias`` (URL
  rules, unique per owner), ``displayTimezone`` (IANA), ``status`` (active | paused).
* ``POST /api/admin/systems/{id}/delete`` (admin): removes the system without losing
  data; see :func:`delete_system`.
* ``GET|POST /api/admin/systems/{id}/points`` (admin): the points with their transform
  versions; an edit of one point's label, order, visibility, activity, kind, and/or a
  transform in force from ``effectiveFrom`` (its series, and so its history, stay).
* ``GET|POST /api/admin/users``, ``POST /api/admin/users/{username}/role`` (admin):
  users (never a password hash), a new user (user | viewer | admin; the password
  rules of :mod:`wattline.security.users`), a role change.
* ``POST /api/data/systems/{id}/shares`` ``{username}`` and
  ``DELETE /api/data/systems/{id}/shares/{username}`` (the owner or an admin): grant or
  revoke read access; doing it twice changes nothing.

A system the caller may not read answers 404 (its existence is not revealed); one it
may read but not change answers 403. Refused input answers 4xx and writes nothing.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from wattline import clock, logs, system_admin
from wattline.api import schemas as S
from wattline.api.deps import MAX_ID, ctx
from wattline.domain import timeutil
from wattline.domain.systems import ALIAS_PATTERN
from wattline.security import users as user_accounts
from wattline.security.deps import require_role
from wattline.security.passwords import MIN_PASSWORD_LENGTH
from wattline.security.errors import ApiError, error_response
from wattline.security.principal import Principal
from wattline.security.system_access import can_read_system, can_write_system
from wattline.store import systems_repo, users_repo
from wattline.store.registry import RegistryError

log = logs.get("wattline.api.admin")
router = APIRouter(tags=["admin"], responses=S.errors(401, 403))
Admin = Annotated[Principal, Depends(require_role("admin"))]
Viewer = Annotated[Principal, Depends(require_role("viewer"))]
SystemId = Annotated[int, Path(ge=1, le=MAX_ID, description="the system's id")]
Username = Annotated[str, Path(min_length=1, max_length=120)]
MAX_EFFECTIVE_S = 253_402_300_800  # 10000-01-01T00:00:00Z
CONFLICT = {409: {"model": S.ErrorBody, "description": "Duplicate (alias, username) or conflicting state"}}


# an optional field that may be left out but not sent as null (the routes refuse null: 400)
NotNull = SkipJsonSchema[None]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------ models


class AdminSystemOut(BaseModel):
    id: int
    displayName: str
    alias: str
    owner: str
    vendorType: str
    vendorSiteId: str
    timezone: str
    status: str = Field(description="effective status: active | paused | error")
    setStatus: str = Field(description="what a person set: active | paused")
    isDefault: bool
    sharedWith: list[str]
    consecutiveFailures: int
    lastSuccessAt: str | None = Field(description="end of the last successful poll (ISO-8601 UTC)")
    freshnessS: int | None = Field(description="seconds since the last successful poll; null if never")
    points: int = Field(description="number of points")


class AdminSystemList(BaseModel):
    systems: list[AdminSystemOut]


class SettingsIn(_In):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})  # at least one setting
    # absent means "unchanged"; null is refused (400), so the schema does not offer it
    displayName: Annotated[str, Field(min_length=1, max_length=200)] | NotNull = None
    alias: Annotated[str, Field(min_length=1, max_length=63, pattern=ALIAS_PATTERN)] | NotNull = None
    displayTimezone: Annotated[str, Field(min_length=1, max_length=64)] | NotNull = None
    status: Literal["active", "paused"] | NotNull = None


class SystemSettingsOut(BaseModel):
    id: int
    displayName: str
    alias: str
    displayTimezone: str
    status: str


class SettingsResult(BaseModel):
    success: bool
    message: str
    system: SystemSettingsOut


class DeleteResult(BaseModel):
    success: bool
    message: str
    systemId: int
    alreadyRemoved: bool
    sharesRemoved: int
    compositeMembershipsRemoved: int
    vendorAccountRemoved: bool = Field(description="its vendor account (credentials) went with it: no other asset used it")
    pointsKept: int = Field(description="points kept (inactive), with every stored reading")


class TransformVersionOut(BaseModel):
    effectiveFrom: int = Field(description="UTC epoch s")
    transform: dict[str, Any]


class AdminPointOut(BaseModel):
    seriesId: int
    key: str
    metricType: str
    unit: str
    vendorField: str | None
    subsystem: str | None
    type: str | None
    label: str | None
    displayOrder: int
    visible: bool
    active: bool
    transforms: list[TransformVersionOut] = Field(description="transform versions, oldest first")


class PointList(BaseModel):
    systemId: int
    points: list[AdminPointOut]


class TransformIn(_In):
    scale: float | None = None
    offset: float | None = None
    sign: Literal[1, -1] | None = None


class PointEditIn(_In):
    key: str = Field(min_length=1, max_length=80)
    label: Annotated[str, Field(min_length=1, max_length=200)] | NotNull = None
    displayOrder: Annotated[int, Field(ge=0, le=1_000_000)] | NotNull = None
    visible: bool | NotNull = None
    active: bool | NotNull = None
    subsystem: Annotated[str, Field(min_length=1, max_length=40)] | NotNull = None
    type: Annotated[str, Field(min_length=1, max_length=40)] | NotNull = None
    transform: TransformIn | None = None
    effectiveFrom: int | str | None = Field(None, description="UTC epoch s or ISO-8601; needed with transform")


class PointEditResult(PointList):
    success: bool
    point: AdminPointOut


class UserOut(BaseModel):
    id: int
    username: str
    role: str
    organizationId: int | None
    createdAt: str | None
    systems: int = Field(description="systems the user owns")


class UserList(BaseModel):
    users: list[UserOut]


class UserCreateIn(_In):
    username: str = Field(min_length=1, max_length=120)
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=1024)
    role: Literal["user", "viewer", "admin"] = "user"


class RoleIn(_In):
    role: Literal["user", "viewer", "admin"]


class UserResult(BaseModel):
    success: bool
    changed: bool
    user: UserOut


class ShareIn(_In):
    username: str = Field(min_length=1, max_length=120)


class ShareResult(BaseModel):
    success: bool
    changed: bool = Field(description="false: it was already so (nothing written)")
    systemId: int
    sharedWith: list[str]


# ------------------------------------------------------------------ helpers


def _hidden(system_id: int) -> ApiError:
    return ApiError(404, "not_found", f"no system with id {system_id}", {"system_id": system_id})


def _registry_error(exc: RegistryError) -> ApiError:
    text = str(exc)
    status = 409 if "already" in text else 400
    return ApiError(status, "conflict" if status == 409 else "invalid_request", text)


def _readable(conn, principal: Principal, system_id: int) -> dict:
    s = systems_repo.system(conn, system_id)
    if s is None or not can_read_system(principal, s):
        raise _hidden(system_id)
    return s


def _writable(conn, principal: Principal, system_id: int) -> dict:
    s = _readable(conn, principal, system_id)
    if not can_write_system(principal, s):
        raise ApiError(403, "forbidden", "only the system's owner or an admin may change it",
                       {"system_id": system_id})
    return s


def _points(conn, system_id: int) -> list[AdminPointOut]:
    pts = systems_repo.system_points(conn, system_id)
    versions = systems_repo.transform_versions(conn, [p["id"] for p in pts])
    return [AdminPointOut(seriesId=p["id"], key=p["key"], metricType=p["metric_type"], unit=p["unit"],
                          vendorField=p["vendor_field"], subsystem=p["subsystem"], type=p["point_type"],
                          label=p["label"], displayOrder=p["display_order"], visible=bool(p["visible"]),
                          active=bool(p["active"]),
                          transforms=[TransformVersionOut(effectiveFrom=e, transform=dict(t))
                                      for e, t in versions.get(p["id"], [])])
            for p in pts]


def _user_out(row: dict, owned: int) -> UserOut:
    created = row.get("created_at")
    return UserOut(id=row["id"], username=row["username"], role=row["role"], organizationId=row["organization_id"],
                   createdAt=created.isoformat() if hasattr(created, "isoformat") else created, systems=owned)


def _owned_counts(conn) -> dict[int, int]:
    out: dict[int, int] = {}
    for s in systems_repo.list_systems(conn):
        out[s["owner_user_id"]] = out.get(s["owner_user_id"], 0) + 1
    return out


def _user_visible(principal: Principal, row: dict | None) -> bool:
    """An admin bound to an organization manages its users only."""
    return row is not None and principal.organization_id in (None, row["organization_id"])


# ------------------------------------------------------------------ systems


@router.get("/api/admin/systems")
def admin_systems(request: Request, principal: Admin) -> AdminSystemList:
    """Every system (an organization's admin: its own), with freshness and point count."""
    c = ctx(request)
    now_ms = int(clock.now() * 1000)
    with c.dbs.main_reader.connect() as conn:
        rows = [r for r in system_admin.systems_with_status(conn, c.dbs.telemetry) if can_read_system(principal, r)]
        counts = systems_repo.point_counts(conn, [r["id"] for r in rows])
    out = []
    for r in rows:
        last = r.get("last_success_ms")
        out.append(AdminSystemOut(
            id=r["id"], displayName=r["display_name"], alias=r["alias"], owner=r["owner"],
            vendorType=r["vendor_type"], vendorSiteId=r["vendor_site_id"], timezone=r["timezone"],
            status=r["status"], setStatus=r["set_status"], isDefault=bool(r["is_default"]),
            sharedWith=sorted(r["shared_with"]), consecutiveFailures=int(r["consecutive_failures"]),
            lastSuccessAt=None if last is None else timeutil.iso(int(last) // 1000),
            freshnessS=None if last is None else max(0, (now_ms - int(last)) // 1000),
            points=counts.get(r["id"], 0)))
    return AdminSystemList(systems=out)


@router.post("/api/admin/systems/{system_id}/settings", responses={**S.errors(400, 404), **CONFLICT})
def system_settings(request: Request, principal: Admin, system_id: SystemId, body: SettingsIn) -> SettingsResult:
    """Change display name, alias, display timezone and/or status (only the fields given)."""
    given = body.model_dump(exclude_unset=True)
    if not given:
        raise ApiError(400, "invalid_request", "give at least one of displayName, alias, displayTimezone, status")
    if any(v is None for v in given.values()):
        raise ApiError(400, "invalid_request", "a setting cannot be null",
                       {"fields": sorted(k for k, v in given.items() if v is None)})
    names = {"displayName": "display_name", "alias": "alias", "displayTimezone": "timezone", "status": "status"}
    with ctx(request).dbs.main.begin() as conn:
        _readable(conn, principal, system_id)
        try:
            s = system_admin.update_settings(conn, system_id, **{names[k]: v for k, v in given.items()})
        except RegistryError as exc:
            raise _registry_error(exc) from None
    log.info("admin.system_settings", system_id=system_id, by=principal.name, fields=sorted(given))
    return SettingsResult(success=True, message="System updated successfully", system=SystemSettingsOut(
        id=s["id"], displayName=s["display_name"], alias=s["alias"], displayTimezone=s["timezone"],
        status=s["status"]))


@router.post("/api/admin/systems/{system_id}/delete", responses=S.errors(400, 404))
def delete_system(request: Request, principal: Admin, system_id: SystemId) -> DeleteResult:
    """Remove a system, keeping what it measured.

    What goes: the system's row (so it is no longer listed, polled or readable through
    the API), its shares, its memberships of composites, and its vendor account with
    the encrypted credentials when no other asset uses that account.
    What stays: the asset (renamed ``removed/<id>/<name>``; ``attributes.removed``
    records when, by whom, and its display name, alias and owner), its points (made
    inactive) and so every series id, raw event, reading, ledger entry and aggregate.
    Deleting it again answers 200 with ``alreadyRemoved: true``.
    """
    c = ctx(request)
    with c.dbs.main.begin() as conn:
        s = systems_repo.system(conn, system_id)
        if s is None:
            removed = systems_repo.removed_attributes(conn, system_id)
            if removed is None or principal.organization_id not in (None, removed.get("organization_id")):
                raise _hidden(system_id)
            kept = systems_repo.point_counts(conn, [system_id]).get(system_id, 0)
            return DeleteResult(success=True, message=f"system {system_id} was already removed", systemId=system_id,
                                alreadyRemoved=True, sharesRemoved=0, compositeMembershipsRemoved=0,
                                vendorAccountRemoved=False, pointsKept=kept)
        if not can_read_system(principal, s):
            raise _hidden(system_id)
        out = system_admin.delete_system(conn, system_id, by=principal.name, now_s=clock.now_s())
        kept = systems_repo.point_counts(conn, [system_id]).get(system_id, 0)
    log.info("admin.system_removed", system_id=system_id, by=principal.name, shares=out["shares"],
             composite_memberships=out["composite_memberships"])
    return DeleteResult(success=True, message=f"system {system_id} removed; its {kept} points and readings are kept",
                        systemId=system_id, alreadyRemoved=False, sharesRemoved=out["shares"],
                        compositeMembershipsRemoved=out["composite_memberships"],
                        vendorAccountRemoved=out["vendor_account_removed"], pointsKept=kept)


@router.get("/api/admin/systems/{system_id}/points", responses=S.errors(400, 404))
def system_points(request: Request, principal: Admin, system_id: SystemId) -> PointList:
    """The system's points by display order, with their transform versions."""
    with ctx(request).dbs.main_reader.connect() as conn:
        _readable(conn, principal, system_id)
        return PointList(systemId=system_id, points=_points(conn, system_id))


@router.post("/api/admin/systems/{system_id}/points", responses=S.errors(400, 404))
def edit_point(request: Request, principal: Admin, system_id: SystemId, body: PointEditIn) -> PointEditResult:
    """Edit one point (by ``key``): display fields now, a transform from ``effectiveFrom``
    on. The point keeps its series id and every stored reading stays as it arrived."""
    given = body.model_dump(exclude_unset=True)
    fields = {col: given[name] for name, col in (("label", "label"), ("displayOrder", "display_order"),
                                                 ("visible", "visible"), ("active", "active"),
                                                 ("subsystem", "subsystem"), ("type", "point_type"))
              if name in given}
    if any(v is None for v in fields.values()):
        raise ApiError(400, "invalid_request", "a point field cannot be null")
    transform = None
    if body.transform is not None:
        transform = body.transform.model_dump(exclude_none=True)
    effective = None
    if body.effectiveFrom is not None:
        try:
            effective = (int(body.effectiveFrom) if isinstance(body.effectiveFrom, int)
                         else timeutil.parse_instant(body.effectiveFrom))
        except ValueError as exc:
            raise ApiError(400, "invalid_request", f"effectiveFrom: {exc}", {"field": "effectiveFrom"}) from None
        if not 0 <= effective < MAX_EFFECTIVE_S:
            raise ApiError(400, "invalid_request", "effectiveFrom must be an instant between 1970 and 9999",
                           {"field": "effectiveFrom"})
    if not fields and transform is None:
        raise ApiError(400, "invalid_request", "nothing to change: give a field or a transform")
    with ctx(request).dbs.main.begin() as conn:
        _readable(conn, principal, system_id)
        try:
            system_admin.edit_point(conn, system_id, body.key, by=principal.name, transform=transform,
                                    effective_from=effective, **fields)
        except RegistryError as exc:
            text = str(exc)
            if "has no point" in text:
                raise ApiError(404, "not_found", text, {"system_id": system_id, "key": body.key}) from None
            raise ApiError(400, "invalid_request", text) from None
        pts = _points(conn, system_id)
    log.info("admin.point_edited", system_id=system_id, key=body.key, by=principal.name,
             fields=sorted(fields), transform=transform is not None)
    return PointEditResult(success=True, systemId=system_id, points=pts,
                           point=next(p for p in pts if p.key == body.key))


# ------------------------------------------------------------------ users


@router.get("/api/admin/users")
def list_users(request: Request, principal: Admin) -> UserList:
    """Every user (an organization's admin: its own), with the number of systems each owns."""
    with ctx(request).dbs.main_reader.connect() as conn:
        rows = [r for r in user_accounts.list_users(conn) if _user_visible(principal, r)]
        owned = _owned_counts(conn)
    return UserList(users=[_user_out(r, owned.get(r["id"], 0)) for r in rows])


@router.post("/api/admin/users", responses={**S.errors(400), **CONFLICT})
def create_user(request: Request, principal: Admin, body: UserCreateIn) -> UserResult:
    """A new user (user | viewer | admin) in the caller's organization; 409 if the name is taken."""
    with ctx(request).dbs.main.begin() as conn:
        if users_repo.exists(conn, body.username.strip()):
            raise ApiError(409, "conflict", f"user {body.username.strip()!r} already exists",
                           {"username": body.username.strip()})
        try:
            user_accounts.create_user(conn, body.username, body.password, body.role,
                                      organization_id=principal.organization_id)
        except user_accounts.UserError as exc:
            raise ApiError(400, "invalid_request", str(exc)) from None
        row = users_repo.by_username(conn, body.username.strip())
    log.info("admin.user_created", username=row["username"], role=row["role"], by=principal.name)
    return UserResult(success=True, changed=True, user=_user_out(
        {**row, "created_at": None}, 0))


@router.post("/api/admin/users/{username}/role", responses={**S.errors(400, 404)})
def change_role(request: Request, principal: Admin, username: Username, body: RoleIn) -> UserResult:
    """Give a user another role; the change applies to their open sessions at once."""
    with ctx(request).dbs.main.begin() as conn:
        row = users_repo.by_username(conn, username)
        if not _user_visible(principal, row):
            raise ApiError(404, "not_found", f"no user {username!r}", {"username": username})
        if row["username"] == principal.name and body.role != row["role"]:
            raise ApiError(400, "invalid_request", "an admin cannot change their own role")
        try:
            changed = system_admin.set_user_role(conn, username, body.role)
        except RegistryError as exc:
            raise ApiError(400, "invalid_request", str(exc)) from None
        row = users_repo.by_username(conn, username)
        owned = _owned_counts(conn).get(row["id"], 0)
    if changed:
        log.info("admin.user_role", username=username, role=body.role, by=principal.name)
    return UserResult(success=True, changed=changed, user=_user_out({**row, "created_at": None}, owned))


# ------------------------------------------------------------------ other methods

_OTHER_METHODS = ["PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


def _method_not_allowed():
    """405 naming both methods (Starlette's own lists only the first route's: GET)."""
    return error_response(405, "method_not_allowed", "Method Not Allowed", None, {"Allow": "GET, POST"})


@router.api_route("/api/admin/users", methods=_OTHER_METHODS, include_in_schema=False)
def users_other_methods():
    return _method_not_allowed()


@router.api_route("/api/admin/systems/{system_id}/points", methods=_OTHER_METHODS, include_in_schema=False)
def points_other_methods():
    return _method_not_allowed()


# ------------------------------------------------------------------ shares


def _share(request: Request, principal: Principal, system_id: int, username: str, revoke: bool) -> ShareResult:
    with ctx(request).dbs.main.begin() as conn:
        s = _writable(conn, principal, system_id)
        if users_repo.by_username(conn, username) is None:
            raise ApiError(400, "unknown_user", f"unknown user {username!r}", {"username": username})
        try:
            changed = system_admin.share_system(conn, system_id, username, principal.name, revoke=revoke)
        except RegistryError as exc:
            raise ApiError(400, "invalid_request", str(exc)) from None
        shared = sorted(systems_repo.shared_usernames(conn, [system_id]).get(system_id, []))
    if changed:
        log.info("system.share_revoked" if revoke else "system.shared", system_id=system_id, username=username,
                 by=principal.name, owner=s["owner"])
    return ShareResult(success=True, changed=changed, systemId=system_id, sharedWith=shared)


@router.post("/api/data/systems/{system_id}/shares", responses=S.errors(400, 404))
def share_system(request: Request, principal: Viewer, system_id: SystemId, body: ShareIn) -> ShareResult:
    """Give ``username`` read access to the system (the owner or an admin)."""
    return _share(request, principal, system_id, body.username.strip(), revoke=False)


@router.delete("/api/data/systems/{system_id}/shares/{username}", responses=S.errors(400, 404))
def revoke_share(request: Request, principal: Viewer, system_id: SystemId, username: Username) -> ShareResult:
    """Take ``username``'s read access away (the owner or an admin); 200 if they had none."""
    return _share(request, principal, system_id, username, revoke=True)


"""The one way monitored systems (seed 003) are added, shared, grouped and edited.

A system is an asset of kind ``system`` owned by a user, with its vendor account
(credentials checked by the adapter's model and stored encrypted, through
:mod:`wattline.provisioning`) and the default points its adapter declares. Every
function takes ``conn``, a transaction on the main database: a refused input raises
:class:`RegistryError` (or :class:`InvalidCredentials`) and the caller's transaction
rolls back, so nothing is written.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from wattline import provisioning
from wattline.config import Settings
from wattline.domain import systems as rules
from wattline.sources.vendors.registry import get_adapter_class
from wattline.security.principal import Principal
from wattline.security.roles import role_at_least
from wattline.security.system_access import can_read_system
from wattline.store import composites_repo, registry, systems_repo, users_repo
from wattline.store.registry import Conn, RegistryError
from wattline.store.sessions_repo import poll_states

__all__ = ["CompositeConflict", "RegistryError", "UnknownComposite", "UnknownMembers", "add_composite", "add_system",
           "can_read_composite", "can_write_composite", "delete_composite", "edit_point", "share_system",
           "systems_with_status", "update_composite"]


def _owner(conn: Conn, username: str) -> dict:
    user = users_repo.by_username(conn, username)
    if user is None:
        raise RegistryError(f"unknown user {username!r} (add it with 'wattline users add')")
    if user["role"] == "viewer":
        raise RegistryError(f"user {username!r} is a viewer: only users and admins own systems")
    return user


def add_system(conn: Conn, settings: Settings, name: str, vendor: str, site_id: str, owner: str, *,
               timezone: str = "UTC", credentials: Mapping[str, Any] | None = None,
               account_id: int | None = None, base_url: str | None = None, alias: str | None = None,
               make_default: bool = False, rate_limits: dict | None = None) -> int:
    """A new system of ``owner`` with its vendor's default points; returns its id.

    Its vendor account is new (``credentials``, named ``owner/alias``) or an existing
    one of the same vendor (``account_id``). The owner's first system is the default
    one; ``make_default`` moves the default to this one.
    """
    vendor = vendor.lower()
    cls = get_adapter_class(vendor)  # UnknownVendorError for a vendor without an adapter
    if credentials is not None:
        provisioning.validate_vendor_credentials(vendor, credentials)  # InvalidCredentials, before any write
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise RegistryError("system name must be 1-200 characters")
    if not str(site_id or "").strip():
        raise RegistryError("--site-id must not be empty")
    user = _owner(conn, owner)
    alias = alias if alias is not None else rules.alias_from_name(name)
    problem = rules.alias_problem(alias)
    if problem:
        raise RegistryError(problem)
    if systems_repo.alias_taken(conn, user["id"], alias):
        raise RegistryError(f"{owner!r} already has a system with alias {alias!r}")
    if any(s["vendor_type"] == vendor and s["vendor_site_id"] == str(site_id) and s["owner"] == owner
           for s in systems_repo.list_systems(conn, visible_to_user_id=user["id"])):
        raise RegistryError(f"{owner!r} already has the {vendor} site {site_id!r}")
    org = user["organization_id"] or registry.ensure_organization(conn)
    if credentials is not None:
        if account_id is not None:
            raise RegistryError("give either credentials or an existing account, not both")
        account_id = provisioning.add_vendor_account(conn, settings, vendor, f"{owner}/{alias}", credentials,
                                                     base_url=base_url, organization_id=org,
                                                     rate_limits=rate_limits)
    elif account_id is None:
        raise RegistryError(f"a system needs its {vendor} credentials (--credential KEY=VALUE) or an account")
    elif account_id not in registry.vendor_account_ids(conn, vendor, org):
        raise RegistryError(f"no {vendor} vendor account {account_id} in the owner's organization")
    sid = registry.add_asset(conn, f"{owner}/{alias}", "system", timezone, organization_id=org, vendor_type=vendor,
                             vendor_plant_id=str(site_id), vendor_account_id=account_id)
    ids = registry.ensure_points(conn, sid, provisioning.vendor_point_definitions(vendor))
    for order, spec in enumerate(cls.points):
        subsystem, kind, label = rules.default_point_info(spec.key)
        systems_repo.set_point_info(conn, ids[spec.key], subsystem=getattr(spec, "subsystem", None) or subsystem,
                                    point_type=getattr(spec, "point_type", None) or kind,
                                    label=getattr(spec, "label", None) or label, display_order=10 * (order + 1))
    if make_default:
        systems_repo.clear_default(conn, user["id"])
    systems_repo.insert_system(conn, sid, user["id"], name, alias,
                               make_default or not systems_repo.has_default(conn, user["id"]))
    return sid


def _system(conn: Conn, system_id: int) -> dict:
    s = systems_repo.system(conn, system_id)
    if s is None:
        raise RegistryError(f"no system with id {system_id}")
    return s


def share_system(conn: Conn, system_id: int, username: str, granted_by: str, *, revoke: bool = False) -> bool:
    """Share read access with ``username`` (or revoke it); False if nothing changed."""
    s = _system(conn, system_id)
    user = users_repo.by_username(conn, username)
    if user is None:
        raise RegistryError(f"unknown user {username!r}")
    if username == s["owner"]:
        raise RegistryError(f"{username!r} owns system {system_id}")
    if revoke:
        return systems_repo.revoke(conn, system_id, user["id"])
    return systems_repo.share(conn, system_id, user["id"], granted_by)


def set_status(conn: Conn, system_id: int, status: str) -> None:
    """Pause or resume polling (``active`` | ``paused``)."""
    if status not in rules.SET_STATUSES:
        raise RegistryError(f"status must be one of {', '.join(rules.SET_STATUSES)}, not {status!r}")
    _system(conn, system_id)
    systems_repo.set_status(conn, system_id, status)


# -- composites ---------------------------------------------------------------------

class UnknownMembers(RegistryError):
    """Member ids that are no system, or one the creator may not read (said alike, so a
    foreign system's existence is not revealed)."""

    def __init__(self, ids: Iterable[int]):
        self.ids = sorted(set(ids))
        super().__init__(f"no system with id {', '.join(map(str, self.ids))}")


class CompositeConflict(RegistryError):
    """The slug or name is taken in the organization."""


class UnknownComposite(RegistryError):
    """No composite with that id."""


def _is_admin_of(principal: Principal | None, organization_id: int | None) -> bool:
    return (principal is not None and principal.kind != "cron" and role_at_least(principal.role, "admin")
            and principal.organization_id in (None, organization_id))


def can_read_composite(principal: Principal | None, composite: Mapping, members: Iterable[Mapping]) -> bool:
    """Its owner, an admin (of its organization), or a user who may read every member
    system (``members``: the systems as :func:`systems_repo.system` returns them)."""
    if _is_admin_of(principal, composite.get("organization_id")):
        return True
    if principal is None or principal.kind != "user" or not role_at_least(principal.role, "viewer"):
        return False
    if composite.get("owner") is not None and principal.name == composite["owner"]:
        return True
    members = list(members)
    return bool(members) and all(can_read_system(principal, m) for m in members)


def can_write_composite(principal: Principal | None, composite: Mapping) -> bool:
    """Its owner (while a user or above) or an admin (of its organization)."""
    if _is_admin_of(principal, composite.get("organization_id")):
        return True
    return (principal is not None and principal.kind == "user" and role_at_least(principal.role, "user")
            and composite.get("owner") is not None and principal.name == composite["owner"])


def _principal_of(conn: Conn, username: str) -> Principal:
    user = users_repo.by_username(conn, username)
    if user is None:
        raise RegistryError(f"unknown user {username!r} (add it with 'wattline users add')")
    return Principal("user", user["username"], user["role"], user["organization_id"])


def _check_members(conn: Conn, member_ids: Iterable[int], readable_by: Principal | None) -> list[int]:
    members = list(dict.fromkeys(int(m) for m in member_ids))
    if not members:
        raise RegistryError("a composite needs at least one member system")
    found = {m: systems_repo.system(conn, m) for m in members}
    bad = [m for m, s in found.items() if s is None or (readable_by is not None and not can_read_system(readable_by, s))]
    if bad:
        raise UnknownMembers(bad)
    return members


def _check_text(slug: str | None, name: str | None, description: str | None) -> None:
    if slug is not None:
        problem = rules.alias_problem(slug)
        if problem:
            raise RegistryError(problem.replace("alias", "slug", 1))
    if name is not None and (not name.strip() or len(name.strip()) > 200):
        raise RegistryError("composite name must be 1-200 characters")
    if description is not None and len(description) > 2000:
        raise RegistryError("description must be at most 2000 characters")


def add_composite(conn: Conn, slug: str, name: str, member_ids: Iterable[int], *,
                  organization_id: int | None = None, owner: str | None = None, description: str | None = None,
                  favourite: bool = False, creator: Principal | None = None) -> int:
    """A composite (a group of kind ``composite``) of existing systems, in the given
    order; returns its id.

    ``owner`` (a username) owns it; every member must be readable by ``creator`` (the
    caller of the API) and by ``owner``, else :class:`UnknownMembers` (nothing written).
    A slug or name taken in the organization: :class:`CompositeConflict`.
    """
    name = (name or "").strip() or slug
    _check_text(slug, name, description)
    owner_p = _principal_of(conn, owner) if owner is not None else None
    members = _check_members(conn, member_ids, creator)
    if owner_p is not None:
        _check_members(conn, members, owner_p)
    org = organization_id
    if org is None:
        org = (owner_p.organization_id if owner_p is not None else None) or registry.ensure_organization(conn)
    if composites_repo.slug_taken(conn, org, slug):
        raise CompositeConflict(f"a composite with slug {slug!r} already exists")
    if composites_repo.name_taken(conn, org, name):
        raise CompositeConflict(f"a composite named {name!r} already exists")
    owner_id = users_repo.by_username(conn, owner)["id"] if owner is not None else None
    return composites_repo.insert_composite(conn, org, slug, name, members, owner_user_id=owner_id,
                                            description=description, favourite=favourite)


def composite(conn: Conn, composite_id: int) -> dict:
    c = composites_repo.get(conn, composite_id)
    if c is None:
        raise UnknownComposite(f"no composite with id {composite_id}")
    return c


def update_composite(conn: Conn, composite_id: int, *, editor: Principal | None = None, slug: str | None = None,
                     name: str | None = None, description: str | None = None, favourite: bool | None = None,
                     member_ids: Iterable[int] | None = None, clear_description: bool = False) -> tuple[dict, dict]:
    """Change a composite's slug, name, description, favourite flag or members (new
    members must be readable by ``editor``). Returns (before, after); the members of
    both are the systems whose subscriptions change."""
    before = composite(conn, composite_id)
    _check_text(slug, name, description)
    values: dict[str, Any] = {}
    if slug is not None and slug != before["slug"]:
        if composites_repo.slug_taken(conn, before["organization_id"], slug, other_than=composite_id):
            raise CompositeConflict(f"a composite with slug {slug!r} already exists")
        values["slug"] = slug
    if name is not None and name.strip() != before["name"]:
        if composites_repo.name_taken(conn, before["organization_id"], name.strip(), other_than=composite_id):
            raise CompositeConflict(f"a composite named {name.strip()!r} already exists")
        values["name"] = name.strip()
    if clear_description:
        values["description"] = None
    elif description is not None:
        values["description"] = description
    if favourite is not None:
        values["favourite"] = bool(favourite)
    composites_repo.update_composite(conn, composite_id, **values)
    if member_ids is not None:
        members = list(dict.fromkeys(int(m) for m in member_ids))
        added = [m for m in members if m not in before["member_ids"]]
        _check_members(conn, members, None)  # every one a system
        if added:
            _check_members(conn, added, editor)  # the new ones readable by who adds them
        if members != before["member_ids"]:
            composites_repo.set_members(conn, composite_id, members)
    return before, composite(conn, composite_id)


def delete_composite(conn: Conn, composite_id: int) -> dict:
    """Delete a composite (its member systems stay); returns what it was."""
    before = composite(conn, composite_id)
    composites_repo.delete_composite(conn, composite_id)
    return before


def edit_point(conn: Conn, system_id: int, key: str, *, by: str | None = None,
               transform: Mapping | None = None, effective_from: int | None = None, **fields: Any) -> None:
    """Change a point's label, order, visibility, activity or kind (its series, and so
    its history, stay), and/or add a transform version in force from ``effective_from``."""
    _system(conn, system_id)
    p = registry.point(conn, system_id, key)
    if p is None:
        raise RegistryError(f"system {system_id} has no point {key!r}")
    bad = set(fields) - set(systems_repo.POINT_EDITABLE)
    if bad:
        raise RegistryError(f"cannot edit {sorted(bad)}; editable: {', '.join(systems_repo.POINT_EDITABLE)}")
    if transform is not None:
        problem = rules.transform_problem(transform)
        if problem:
            raise RegistryError(problem)
        if effective_from is None:
            raise RegistryError("a transform change needs its effective time")
        systems_repo.add_transform_version(conn, p["id"], int(effective_from), dict(transform), by)
    systems_repo.set_point_info(conn, p["id"], **fields)


def systems_with_status(conn: Conn, telemetry, *, visible_to_user_id: int | None = None) -> list[dict]:
    """Systems (all, or those a user owns or sees through a share) with their effective
    status and polling health (``consecutive_failures``, ``last_success_ms``)."""
    rows = systems_repo.list_systems(conn, visible_to_user_id=visible_to_user_id)
    health = poll_states(telemetry, [r["id"] for r in rows]) if rows else {}
    for r in rows:
        h = health.get(r["id"], {})
        r["set_status"] = r["status"]
        r["consecutive_failures"] = h.get("consecutive_failures") or 0
        r["last_success_ms"] = h.get("last_success_ms")
        r["status"] = rules.effective_status(r["set_status"], r["consecutive_failures"])
    return rows


# -- settings, removal and user roles (admin API) ------------------------------------------

_UNSET: Any = object()


def update_settings(conn: Conn, system_id: int, *, display_name: Any = _UNSET, alias: Any = _UNSET,
                    timezone: Any = _UNSET, status: Any = _UNSET) -> dict:
    """Change a system's display name, alias (checked, unique per owner), display
    timezone (IANA) and/or set status (``active`` | ``paused``); returns the system.

    Every value is checked before anything is written; giving the current value
    again changes nothing. The timezone is the asset's: new readings bucket by it
    from now on; local days already aggregated keep the old zone's days until they
    are re-derived (``POST /api/cron/daily {"action": "clear"}``).
    """
    s = _system(conn, system_id)
    values: dict[str, Any] = {}
    if display_name is not _UNSET:
        name = str(display_name or "").strip()
        if not name or len(name) > 200:
            raise RegistryError("displayName must be 1-200 characters")
        values["display_name"] = name
    if alias is not _UNSET:
        problem = rules.alias_problem(str(alias or ""))
        if problem:
            raise RegistryError(problem)
        if systems_repo.alias_taken_by_other(conn, s["owner_user_id"], alias, system_id):
            raise RegistryError(f"{s['owner']!r} already has a system with alias {alias!r}")
        values["alias"] = alias
    if status is not _UNSET:
        if status not in rules.SET_STATUSES:
            raise RegistryError(f"status must be one of {', '.join(rules.SET_STATUSES)}, not {status!r}")
        values["status"] = status
    tz = None
    if timezone is not _UNSET:
        from wattline.domain.timeutil import TimezoneError, zone

        try:
            zone(str(timezone or ""))
        except TimezoneError as exc:
            raise RegistryError(str(exc)) from None
        tz = str(timezone)
    values = {k: v for k, v in values.items() if s.get(k) != v}
    if tz == s["timezone"]:
        tz = None
    systems_repo.update_system(conn, system_id, timezone=tz, **values)
    return _system(conn, system_id)


def delete_system(conn: Conn, system_id: int, *, by: str, now_s: int) -> dict:
    """Remove a system without losing its data (see :func:`systems_repo.remove_system`):
    its row, shares, composite memberships and unshared vendor account go; its asset
    (marked removed), points (inactive) and every stored reading stay. If it was its
    owner's default system, the owner's oldest remaining system becomes the default."""
    s = _system(conn, system_id)
    out = systems_repo.remove_system(conn, system_id, removed_at=now_s, removed_by=by)
    if s["is_default"]:
        rest = [r for r in systems_repo.list_systems(conn, visible_to_user_id=s["owner_user_id"])
                if r["owner_user_id"] == s["owner_user_id"]]
        if rest:
            systems_repo.set_default(conn, rest[0]["id"])
    return out


def set_user_role(conn: Conn, username: str, role: str) -> bool:
    """Give a user another role (``viewer`` | ``user`` | ``admin``); False if it had it.

    A user who owns systems cannot become a viewer (viewers own nothing): move or
    remove the systems first. Superadmin is given by the CLI only.
    """
    if role not in ("viewer", "user", "admin"):
        raise RegistryError(f"role must be one of viewer, user, admin, not {role!r}")
    user = users_repo.by_username(conn, username)
    if user is None:
        raise RegistryError(f"unknown user {username!r}")
    if user["role"] == "superadmin":
        raise RegistryError(f"{username!r} is a superadmin: change it with the CLI")
    if user["role"] == role:
        return False
    if role == "viewer" and any(r["owner_user_id"] == user["id"]
                                for r in systems_repo.list_systems(conn, visible_to_user_id=user["id"])):
        raise RegistryError(f"{username!r} owns systems: a viewer owns nothing")
    return users_repo.set_role_by_username(conn, username, role)

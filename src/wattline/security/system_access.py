"""Who may read or change a system: its owner, users it is shared with (read), admins.

``system`` is a mapping with ``owner`` (username), ``shared_with`` (usernames) and
``organization_id``, as :func:`wattline.store.systems_repo.system` returns it; an admin
bound to an organization sees only its systems. Tokens and the cron secret
carry no user: only an admin-or-above token passes.
"""

from __future__ import annotations

from typing import Mapping

from wattline.security.principal import Principal
from wattline.security.roles import role_at_least


def _is_admin(principal: Principal | None, system: Mapping) -> bool:
    """An admin (or above) of the system's organization, or of every organization."""
    return (principal is not None and principal.kind != "cron" and role_at_least(principal.role, "admin")
            and principal.organization_id in (None, system.get("organization_id")))


def can_read_system(principal: Principal | None, system: Mapping) -> bool:
    """Admin, the owner, or a user (viewer or above) the system is shared with."""
    if _is_admin(principal, system):
        return True
    if principal is None or principal.kind != "user" or not role_at_least(principal.role, "viewer"):
        return False
    return principal.name == system["owner"] or principal.name in system.get("shared_with", ())


def can_write_system(principal: Principal | None, system: Mapping) -> bool:
    """Admin, or the owner while their role is still ``user`` or above (a share never writes)."""
    if _is_admin(principal, system):
        return True
    return (principal is not None and principal.kind == "user" and role_at_least(principal.role, "user")
            and principal.name == system["owner"])

"""Role hierarchy: superadmin > admin > user > viewer.

"cron" (the scheduler's shared secret) is deliberately not part of the hierarchy:
it ranks below everything, so it only opens routes that name it explicitly
(``deps.require_cron_or_role``).
"""

from __future__ import annotations

ROLES: tuple[str, ...] = ("viewer", "user", "admin", "superadmin")  # lowest first
_RANK = {name: rank for rank, name in enumerate(ROLES)}


class RoleError(ValueError):
    """An unknown role name."""


def validate_role(role: str) -> str:
    """Return ``role`` if it is a known role name, else raise RoleError."""
    if role not in _RANK:
        raise RoleError(f"unknown role {role!r}: expected one of {', '.join(reversed(ROLES))}")
    return role


def role_at_least(actual: str, required: str) -> bool:
    """True if ``actual`` ranks at or above ``required``.

    An unknown ``actual`` (a stale row, "cron") never passes; an unknown
    ``required`` is a programming error and raises RoleError.
    """
    validate_role(required)
    rank = _RANK.get(actual)
    return rank is not None and rank >= _RANK[required]


# -- service roles ---------------------------------------------------------------
# "ingest" (a device gateway's token) is outside the hierarchy: it ranks below
# "viewer", so no require_role admits it, and it opens only the routes that ask
# may_ingest (posting telemetry), as "cron" opens only the routes that name it.
INGEST = "ingest"
SERVICE_ROLES: tuple[str, ...] = (INGEST,)
_RANK[INGEST] = -1  # a known role (tokens can carry it), below every user role


def may_ingest(role: str) -> bool:
    """True for the roles that may post telemetry: ``ingest``, and ``admin`` or above."""
    return role == INGEST or (role in ROLES and role_at_least(role, "admin"))

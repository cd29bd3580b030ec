"""Which composite a request names, if the caller may read it: the one rule of
``/api/data/latest``, ``/api/data/historical``, ``/api/data/flows`` and the composite
page (owner, admin, or a reader of every member:
:func:`wattline.system_admin.can_read_composite`)."""

from __future__ import annotations

from wattline import system_admin
from wattline.api.deps import MAX_ID
from wattline.security.principal import Principal
from wattline.store import composites_repo, systems_repo


def readable_composite(conn, principal: Principal, ref: str | int) -> dict | None:
    """The composite ``ref`` names (its id as digits, or its slug; a slug is unique per
    organization, so the first the caller may read) with ``members`` (the member
    systems' rows, in order; members since deleted are left out); None when there is
    none the caller may read (the caller learns nothing more)."""
    text = str(ref or "").strip()
    if text.isdigit() and 0 < int(text) <= MAX_ID:
        candidates = [c for c in [composites_repo.get(conn, int(text))] if c is not None]
    else:
        candidates = composites_repo.by_slug(conn, text)
    for c in candidates:
        members = [m for m in (systems_repo.system(conn, i) for i in c["member_ids"]) if m is not None]
        if system_admin.can_read_composite(principal, c, members):
            return {**c, "members": members}
    return None

"""Who is making a request, whatever the way they proved it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

PrincipalKind = Literal["token", "user", "cron"]


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    name: str  # token name, username, or "cron"
    role: str  # a roles.ROLES name, or "cron" for the scheduler's shared secret
    organization_id: int | None = None
    # users only: a tag of the password hash the session was opened with, so that a
    # password change ends the sessions opened before it (not part of equality)
    credential: str | None = field(default=None, compare=False)

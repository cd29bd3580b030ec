"""FastAPI dependencies: who is calling, and may they.

Credentials, in order: ``Authorization: Bearer <token>`` (the cron secret, else an
API token), then the ``wattline_session`` cookie. A request that presents a bearer
credential is judged on it alone: a bad token never falls back to a cookie.
Requires ``app.state.ctx`` with ``settings`` (``encryption_key``, ``cron_secret``)
and ``dbs.main_reader``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import Request

from wattline.security import sessions, tokens, users
from wattline.security.errors import ApiError
from wattline.security.principal import Principal
from wattline.security.roles import role_at_least, validate_role

CRON_PRINCIPAL = Principal(kind="cron", name="cron", role="cron")


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _is_cron_secret(ctx, presented: str) -> bool:
    secret = getattr(ctx.settings, "cron_secret", None)
    # bytes: compare_digest refuses non-ASCII str, and a client may send anything
    return bool(secret) and hmac.compare_digest(presented.encode(), secret.encode())


def get_principal(request: Request) -> Principal | None:
    """The authenticated caller, or None. Cached on ``request.state``."""
    if hasattr(request.state, "principal"):
        return request.state.principal
    ctx = request.app.state.ctx
    principal: Principal | None = None
    bearer = _bearer(request)
    if bearer is not None:
        if bearer and _is_cron_secret(ctx, bearer):
            principal = CRON_PRINCIPAL
        elif bearer:
            with ctx.dbs.main_reader.connect() as conn:
                principal = tokens.lookup_token(conn, bearer)
    else:
        claimed = sessions.read_session(ctx.settings.encryption_key, request.cookies.get(sessions.COOKIE_NAME))
        if claimed is not None:
            # the cookie proves who; the database says what they may do now
            # (a deleted or demoted user, or one whose password changed, loses access
            # before the cookie expires)
            with ctx.dbs.main_reader.connect() as conn:
                principal = users.get_user_principal(conn, claimed.name)
            if principal is not None and principal.credential != claimed.credential:
                principal = None  # the password changed since this session was opened
    request.state.principal = principal
    return principal


def _authorize(request: Request, allowed: Callable[[Principal], bool], need: str) -> Principal:
    principal = get_principal(request)
    if principal is None:
        raise ApiError(401, "unauthorized", "authentication required")
    if not allowed(principal):
        raise ApiError(403, "forbidden", f"requires role {need}", {"required_role": need})
    return principal


def require_role(role: str) -> Callable[[Request], Principal]:
    """Dependency: a principal whose role is at least ``role`` (the cron secret never is)."""
    validate_role(role)

    def dependency(request: Request) -> Principal:
        return _authorize(request, lambda p: p.kind != "cron" and role_at_least(p.role, role), role)

    return dependency


def require_cron_or_role(role: str) -> Callable[[Request], Principal]:
    """Dependency for scheduler-triggered routes: the cron secret, or at least ``role``."""
    validate_role(role)

    def dependency(request: Request) -> Principal:
        return _authorize(request, lambda p: p.kind == "cron" or role_at_least(p.role, role),
                          f"cron or {role}")

    return dependency

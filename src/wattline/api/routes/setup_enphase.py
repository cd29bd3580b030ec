"""The setup wizard's Enphase step: a system whose tokens come from the owner's OAuth
authorization (seed 003).

Enphase cannot be tested before the owner authorized Wattline (the telemetry needs an
access token), so the wizard goes: vendor → application credentials (``client_id``,
``client_secret``, ``api_key``) and site id → name → ``POST /api/setup/enphase`` →
``GET /api/auth/enphase/auth`` → the owner approves at Enphase →
``GET /api/auth/enphase/callback``: the code is traded for tokens, the connection is
tested with them, and only then is the system created, its credentials (tokens
included) stored encrypted; the browser lands on ``/setup?saved=<id>``.

Until the callback nothing is written: the pending setup travels in an HttpOnly cookie
encrypted with AES-256-GCM (its own associated data, so it cannot pass for stored
credentials), bound to the user and expiring with the OAuth state.
"""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from wattline import clock, logs, system_admin
from wattline.api import schemas as S
from wattline.api.deps import ctx
from wattline.api.routes.setup import SetupIn, User, _check_request, _scrub, _secrets, vendor_base_url
from wattline.security.crypto import CredentialError, decrypt_credentials, encrypt_credentials
from wattline.security.errors import ApiError
from wattline.store.registry import RegistryError
from wattline.sources.vendors.errors import InvalidCredentials

log = logs.get("wattline.api.setup")
router = APIRouter(tags=["setup"], responses=S.errors(401, 403))

SETUP_COOKIE = "wattline_enphase_setup"
COOKIE_PATH = "/api/auth/enphase"  # sent only to the OAuth routes
TTL_S = 600  # as the OAuth state
_AAD = b"wattline-enphase-pending-setup"
_TOKEN_KEYS = ("access_token", "refresh_token", "access_expires_at")


class EnphaseSetupStarted(BaseModel):
    authorizeUrl: str  # where the wizard sends the browser next


def _encode(key: bytes, pending: dict) -> str:
    return base64.urlsafe_b64encode(encrypt_credentials(key, pending, associated_data=_AAD)).decode()


def pending_setup(request: Request, who: str) -> dict | None:
    """The caller's pending Enphase setup from its cookie, or None (absent, tampered,
    expired or another user's)."""
    text = request.cookies.get(SETUP_COOKIE)
    if not text:
        return None
    try:
        pending = decrypt_credentials(ctx(request).settings.encryption_key, base64.urlsafe_b64decode(text),
                                      associated_data=_AAD)
    except (CredentialError, ValueError):
        return None
    if pending.get("who") != who or int(pending.get("expires", 0)) < clock.now():
        return None
    return pending


def forget(response: Response) -> None:
    response.delete_cookie(SETUP_COOKIE, path=COOKIE_PATH)


def _dry_run(request: Request, principal, body: SetupIn, credentials: dict[str, Any]) -> None:
    """Everything ``add_system`` would refuse (alias or site taken, bad name), refused
    now rather than after the owner went to Enphase: the system is added in a
    transaction that is rolled back."""
    c = ctx(request)
    with c.dbs.main.connect() as conn:
        trans = conn.begin()
        try:
            system_admin.add_system(conn, c.settings, body.displayName, "enphase", body.siteId, principal.name,
                                    timezone=body.timezone, credentials=credentials,
                                    base_url=vendor_base_url(c.settings), alias=body.alias,
                                    make_default=body.makeDefault)
        finally:
            trans.rollback()


@router.post("/api/setup/enphase", responses={**S.errors(400), 409: {"model": S.ErrorBody,
                                                                      "description": "Site or alias taken"}})
def start_enphase_setup(request: Request, response: Response, principal: User, body: SetupIn) -> EnphaseSetupStarted:
    """Begin adding an Enphase system: checks the request (400/409, nothing written),
    keeps it in an encrypted cookie and answers where to send the browser (the OAuth
    start); the system is created by the callback once the owner authorized."""
    if principal.kind != "user":
        raise ApiError(403, "forbidden", "a system is owned by a signed-in user, not by a token")
    vendor = _check_request(body.vendorType, body.timezone, body.credentials)
    if vendor != "enphase":
        raise ApiError(400, "invalid_request", "this step is for Enphase systems; others use POST /api/setup",
                       {"vendorType": vendor})
    credentials = {k: v for k, v in body.credentials.items() if k not in _TOKEN_KEYS}  # tokens come from Enphase
    secrets = _secrets(body.credentials)
    try:
        _dry_run(request, principal, body, credentials)
    except InvalidCredentials as exc:
        raise ApiError(400, "invalid_credentials", _scrub(str(exc), secrets)) from None
    except RegistryError as exc:
        text = _scrub(str(exc), secrets)
        status = 409 if "already" in text else 400
        raise ApiError(status, "conflict" if status == 409 else "invalid_request", text) from None
    pending = {"who": principal.name, "expires": int(clock.now()) + TTL_S, "siteId": body.siteId,
               "displayName": body.displayName, "alias": body.alias, "timezone": body.timezone,
               "makeDefault": body.makeDefault, "credentials": credentials}
    response.set_cookie(SETUP_COOKIE, _encode(ctx(request).settings.encryption_key, pending), max_age=TTL_S,
                        httponly=True, samesite="lax", path=COOKIE_PATH, secure=request.url.scheme == "https")
    log.info("setup.enphase_started", by=principal.name)
    return EnphaseSetupStarted(authorizeUrl="/api/auth/enphase/auth")


def add_authorized_system(request: Request, pending: dict, credentials: dict[str, Any]) -> int:
    """Create the pending system with its credentials, tokens included (stored encrypted)."""
    c = ctx(request)
    with c.dbs.main.begin() as conn:
        return system_admin.add_system(conn, c.settings, pending["displayName"], "enphase", pending["siteId"],
                                       pending["who"], timezone=pending["timezone"], credentials=credentials,
                                       base_url=vendor_base_url(c.settings), alias=pending["alias"],
                                       make_default=bool(pending["makeDefault"]))

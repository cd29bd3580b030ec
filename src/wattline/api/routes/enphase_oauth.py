"""Wattline's side of the Enphase OAuth 2.0 authorization-code flow.

1. ``GET /api/auth/enphase/auth?account_id=N`` (an admin, signed in): redirects the
   browser to the account's Enphase authorization server with a ``state`` that names
   the account, expires in 10 minutes and is signed (HMAC-SHA256 with a key derived
   from the credential key) over a random nonce and the caller's name; the nonce also
   goes into an HttpOnly cookie, so only this browser can finish the flow.
2. The owner approves at Enphase, which redirects to ``GET /api/auth/enphase/callback
   ?code=…&state=…``: the state is checked (signature, expiry, caller, cookie) before
   anything else, the code is traded for tokens, and the tokens are stored encrypted
   (AES-256-GCM, ``security/crypto.py``) as the vendor account's credentials.

The same two routes finish the setup wizard's Enphase step (``POST /api/setup/enphase``,
:mod:`wattline.api.routes.setup_enphase`, a user): without ``account_id`` the start
reads the caller's pending setup from its cookie (the state then names account 0), and
the callback, after the code exchange, tests the connection with the new tokens and
creates the system (tokens stored encrypted), then sends the browser to
``/setup?saved=<id>`` (``/setup?enphaseError=<code>`` when it could not).

A bad or missing state is a 400 ``invalid_state`` and changes nothing. No token,
code or secret is ever logged or returned (the access log's query strings are redacted).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from urllib.parse import quote
from pydantic import BaseModel

from wattline import clock, logs
from wattline.api import schemas as S
from wattline.api.deps import MAX_ID, ctx
from wattline.api.routes import setup_enphase
from wattline.api.routes.setup import run_test, vendor_base_url
from wattline.domain import timeutil
from wattline.security.crypto import CredentialError, decrypt_credentials, encrypt_credentials
from wattline.security.deps import require_role
from wattline.security.errors import ApiError
from wattline.security.principal import Principal
from wattline.security.roles import role_at_least
from wattline.sources.vendors.enphase import EnphaseAdapter, EnphaseCredentials
from wattline.sources.vendors.enphase.adapter import RedactSecrets
from wattline.sources.vendors.errors import InvalidCredentials, VendorAuthError, VendorError
from wattline.store import vendor_accounts_repo
from wattline.store.registry import RegistryError

log = logs.get("wattline.api.enphase_oauth")
router = APIRouter(prefix="/api/auth/enphase", tags=["vendors"])

STATE_COOKIE = "wattline_enphase_oauth"
STATE_TTL_S = 600
_STATE_LABEL = b"wattline-enphase-oauth-state"

logging.getLogger("uvicorn.access").addFilter(RedactSecrets())  # the callback's URL holds the code


class EnphaseAuthorizeUrl(BaseModel):
    """Where to send the owner (asked with ``Accept: application/json``)."""

    authorize_url: str


class EnphaseAuthorized(BaseModel):
    """The account now holds the owner's tokens (never shown)."""

    account_id: int
    vendor_type: str
    authorized: bool
    access_expires_at: str | None


def _state_key(request: Request) -> bytes:
    return hmac.new(ctx(request).settings.encryption_key, _STATE_LABEL, hashlib.sha256).digest()


def _sign(key: bytes, account_id: int, nonce: str, expires: int, who: str) -> str:
    body = f"{account_id}.{nonce}.{expires}"
    mac = hmac.new(key, f"{body}.{who}".encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def _check_state(request: Request, state: str | None, who: str) -> int:
    """The account id the state names; ApiError 400 ``invalid_state`` if it is not ours."""
    def refuse(why: str) -> ApiError:
        return ApiError(400, "invalid_state", f"OAuth state refused: {why}", {"parameter": "state"})

    parts = (state or "").split(".")
    if len(parts) != 4 or not parts[0].isdigit() or not parts[2].isdigit():
        raise refuse("missing or malformed")
    account_id, nonce, expires = int(parts[0]), parts[1], int(parts[2])
    if not hmac.compare_digest(_sign(_state_key(request), account_id, nonce, expires, who), state or ""):
        raise refuse("not issued by this server for this user")
    if clock.now() > expires:
        raise refuse("expired; start again at /api/auth/enphase/auth")
    cookie = request.cookies.get(STATE_COOKIE, "")
    if not hmac.compare_digest(cookie.encode(), nonce.encode()):
        raise refuse("not started in this browser")
    return account_id


def _account(request: Request, account_id: int) -> tuple[dict, EnphaseCredentials]:
    with ctx(request).dbs.main.connect() as conn:
        row = vendor_accounts_repo.get(conn, account_id)
    if row is None or row["vendor_type"] != "enphase":
        raise ApiError(404, "not_found", f"no Enphase vendor account with id {account_id}",
                       {"account_id": account_id})
    try:
        creds = EnphaseCredentials.model_validate(
            decrypt_credentials(ctx(request).settings.encryption_key, row["credentials_encrypted"]))
    except (CredentialError, ValueError):
        raise ApiError(400, "invalid_request", "the account's stored credentials cannot be used",
                       {"account_id": account_id}) from None
    return row, creds


def _redirect_uri(request: Request) -> str:
    return str(request.url_for("enphase_oauth_callback"))


def _admin(principal: Principal) -> None:
    if not role_at_least(principal.role, "admin") or principal.kind == "cron":
        raise ApiError(403, "forbidden", "requires role admin", {"required_role": "admin"})


def _state_cookie(response: Response, request: Request, nonce: str) -> Response:
    response.set_cookie(STATE_COOKIE, nonce, max_age=STATE_TTL_S, httponly=True, samesite="lax",
                        path="/api/auth/enphase", secure=request.url.scheme == "https")
    return response


@router.get("/auth", response_model=EnphaseAuthorizeUrl,
            responses={200: {"description": "With Accept: application/json, the URL (same cookie set)"},
                       302: {"description": "To the Enphase authorization server"}, **S.errors(400, 401, 403, 404)})
def enphase_oauth_start(request: Request, principal: Annotated[Principal, Depends(require_role("user"))],
                        account_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> Response:
    """Start the authorization of an Enphase vendor account (``account_id``, an admin),
    or of the system the caller's setup wizard is adding (no ``account_id``, after
    ``POST /api/setup/enphase``): redirects to Enphase (a page script may ask for the
    URL as JSON instead; the state cookie is set either way)."""
    if account_id is not None:
        _admin(principal)
        row, creds = _account(request, account_id)
        base_url = row["base_url"]
    else:
        pending = setup_enphase.pending_setup(request, principal.name)
        if pending is None:
            _admin(principal)  # what a user without a pending setup learns: the route is not theirs
            raise ApiError(400, "invalid_parameter", "query parameter 'account_id' is required",
                           {"parameter": "account_id"})
        account_id, base_url = 0, vendor_base_url(ctx(request).settings)
        creds = EnphaseCredentials.model_validate(pending["credentials"])
    nonce = secrets.token_urlsafe(16)
    expires = int(clock.now()) + STATE_TTL_S
    state = _sign(_state_key(request), account_id, nonce, expires, principal.name)
    url = EnphaseAdapter(base_url, creds).authorize_url(_redirect_uri(request), state)
    if "application/json" in request.headers.get("accept", ""):
        response: Response = JSONResponse(EnphaseAuthorizeUrl(authorize_url=url).model_dump())
    else:
        response = RedirectResponse(url, status_code=302)
    return _state_cookie(response, request, nonce)


@router.get("/callback", name="enphase_oauth_callback",
            responses={**S.errors(400, 401, 403, 404),
                       502: {"model": S.ErrorBody, "description": "Enphase did not answer"}})
async def enphase_oauth_callback(
    request: Request, response: Response, principal: Annotated[Principal, Depends(require_role("user"))],
    code: Annotated[str | None, Query(max_length=512)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> EnphaseAuthorized:
    """Finish the authorization: check the state, trade the code for tokens, store them
    encrypted (in the vendor account, or in the system the setup wizard adds)."""
    pending = setup_enphase.pending_setup(request, principal.name)
    if pending is None:
        _admin(principal)
    account_id = _check_state(request, state, principal.name)  # before anything else
    if account_id == 0:
        if pending is None:
            raise ApiError(400, "invalid_state", "OAuth state refused: no setup pending in this browser",
                           {"parameter": "state"})
        return await _finish_setup(request, pending, code, error)
    _admin(principal)
    if error is not None:
        raise ApiError(400, "authorization_denied", "the owner did not authorize Wattline at Enphase",
                       {"error": error})
    if not code:
        raise ApiError(400, "invalid_parameter", "query parameter 'code' is required", {"parameter": "code"})
    row, creds = _account(request, account_id)
    try:
        async with EnphaseAdapter(row["base_url"], creds) as adapter:
            new = await adapter.exchange_code(code, _redirect_uri(request))
    except InvalidCredentials:
        raise ApiError(400, "invalid_request", "Enphase answered with unusable tokens", None) from None
    except VendorAuthError as exc:
        raise ApiError(400, "grant_refused", "Enphase refused the authorization code",
                       {"vendor_error": exc.code}) from None
    except VendorError:
        raise ApiError(502, "vendor_unavailable", "Enphase's token endpoint did not answer", None) from None
    blob = encrypt_credentials(ctx(request).settings.encryption_key, new.to_storage())
    with ctx(request).dbs.main.begin() as conn:
        vendor_accounts_repo.replace_credentials(conn, account_id, blob)
    response.delete_cookie(STATE_COOKIE, path="/api/auth/enphase")  # the state is spent
    expires = new.access_expires_at
    return EnphaseAuthorized(account_id=account_id, vendor_type="enphase", authorized=True,
                             access_expires_at=timeutil.iso(expires) if expires is not None else None)


async def _finish_setup(request: Request, pending: dict, code: str | None, error: str | None) -> Response:
    """The wizard's end: tokens, a connection test with them, the system; the browser
    goes back to the wizard either way (nothing written unless all of it worked)."""
    def back(query: str) -> Response:
        response = RedirectResponse(f"/setup?{query}", status_code=303)
        response.delete_cookie(STATE_COOKIE, path="/api/auth/enphase")
        setup_enphase.forget(response)
        return response

    if error is not None or not code:
        return back("enphaseError=authorization_denied")
    settings = ctx(request).settings
    try:
        async with EnphaseAdapter(vendor_base_url(settings), EnphaseCredentials.model_validate(
                pending["credentials"])) as adapter:
            new = await adapter.exchange_code(code, _redirect_uri(request))
    except (InvalidCredentials, VendorAuthError):
        return back("enphaseError=grant_refused")
    except VendorError:
        return back("enphaseError=vendor_unavailable")
    credentials = new.to_storage()
    tested = await run_test(settings, "enphase", pending["siteId"], pending["timezone"], credentials)
    if not tested.success:
        return back(f"enphaseError=connection_failed&errorCode={quote(tested.errorCode or 'request')}")
    try:
        system_id = await asyncio.to_thread(setup_enphase.add_authorized_system, request, pending, credentials)
    except (InvalidCredentials, RegistryError):
        return back("enphaseError=conflict")
    log.info("setup.system_added", system_id=system_id, vendor="enphase", owner=pending["who"])
    return back(f"saved={system_id}")

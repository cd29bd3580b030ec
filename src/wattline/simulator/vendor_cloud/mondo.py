"""Emulated Mondo Power: its identity server's scripted OIDC login and its monitoring API.

Identity (``identity.mondopower.com.au`` in real life; here the same loopback app):

======================================  =================================================
``GET /Account/Login``                  HTML form with a hidden ``__RequestVerificationToken``
                                        and the antiforgery cookie it must match
``POST /Account/Login``                 form ``Email``, ``Password``, ``RememberMe``, the
                                        token (and its cookie): 302 to ``ReturnUrl`` + the
                                        identity cookie; a wrong login is 200 with
                                        "Invalid login attempt"; a missing or mismatched
                                        token is 400
``GET /connect/authorize``              ``client_id=platform.frontend``, ``response_type=code``,
                                        the registered ``redirect_uri``, scope ``openid
                                        profile mondoapi offline_access``, PKCE
                                        ``code_challenge`` (S256 only): with the identity
                                        cookie a 302 whose Location carries ``code`` and
                                        ``state``; without it a 302 to the login page
``POST /connect/token``                 ``authorization_code`` (code once, within 5 min, the
                                        verifier whose S256 is the challenge) or
                                        ``refresh_token`` (rotated on use): ``access_token``,
                                        ``expires_in``, ``token_type "Bearer"``, ``id_token``,
                                        ``refresh_token``; errors 400 ``{"error": "invalid_grant"}``
======================================  =================================================

API (Bearer; an unknown or expired token is 401 with ``WWW-Authenticate``):
``/monitoring/organizations``, ``/monitoring/organizations/{orgId}/monitoringpointgroups``,
``/subcircuit/{groupId}`` (rows in **W** and **Wh**, ``totalEnergyWh`` monotonic; a
point id where a group id belongs is **403**), ``/liveusage/widget/{groupId}`` (**kW**,
battery ``stateOfCharge`` %, ``lastRecordedUtc`` on the minute: stale data repeats).
Values come from :mod:`.home_flow`. Shared faults (429, 5xx, slow, malformed: a
``totalEnergyWh`` or ``stateOfCharge`` made ``"n/a"``, a field removed) via :mod:`.common`.

Configure with :func:`install` before the app serves, else the defaults hold: the
account ``demo@wattline.local`` / ``wattline-demo``, organization ``org-1`` with the
group ``grp-1001`` (a Sydney home); any other ``grp-*`` id gets a default home.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from .common import account_limited, before_call, cloud
from .config import DEFAULT_START_TS, PlantProfile, default_profile
from .home_flow import home_flow
from .state import CallRecord, TokenStore

VENDOR = "mondo"
CLIENT_ID = "platform.frontend"
REDIRECT_URI = "https://platform.mondopower.com.au/signin-callback"
SCOPE = "openid profile mondoapi offline_access"
ANTIFORGERY_COOKIE = ".AspNetCore.Antiforgery.mondo"
IDENTITY_COOKIE = ".AspNetCore.Identity.Application"
DEFAULT_CREDENTIALS = {"email": "demo@wattline.local", "password": "wattline-demo"}
CODE_TTL_S = 300.0
_LOGIN_FORM = (
    "<!DOCTYPE html><html><head><title>Log in - Mondo</title></head><body>{message}"
    "<form method=\"post\" action=\"/Account/Login?ReturnUrl={return_url}\">"
    "<input name=\"Email\" type=\"email\"><input name=\"Password\" type=\"password\">"
    "<input name=\"RememberMe\" type=\"checkbox\" value=\"true\">"
    "<input name=\"__RequestVerificationToken\" type=\"hidden\" value=\"{token}\">"
    "<button type=\"submit\">Log in</button></form></body></html>"
)

router = APIRouter()


@dataclass
class MondoSettings:
    """Accounts, the organization and its groups (monitoring point group id -> home)."""

    credentials: list[dict[str, str]] = field(default_factory=lambda: [dict(DEFAULT_CREDENTIALS)])
    organization_id: str = "org-1"
    groups: dict[str, PlantProfile] = field(default_factory=lambda: {
        "grp-1001": PlantProfile(start_operating_ts=DEFAULT_START_TS, capacity_kw=10.0, latitude=-33.87,
                                 longitude=151.21, timezone="Australia/Sydney", name="Home", initial_energy_kwh=1000.0),
    })
    refresh_ttl_s: float = 30 * 86400.0


class MondoCloud:
    """Sessions, codes, tokens and homes of one emulated Mondo (thread-safe)."""

    def __init__(self, settings: MondoSettings, state) -> None:
        self.settings = settings
        self.state = state
        self.clock: Callable[[], float] = state.config.clock
        self.access = TokenStore(state.config)  # expires after config.token_ttl_s
        self._lock = threading.Lock()
        self._antiforgery: dict[str, str] = {}  # cookie -> form token
        self._sessions: dict[str, str] = {}  # identity cookie -> account
        self._codes: dict[str, tuple[str, str, float]] = {}  # code -> (account, challenge, expiry)
        self._refresh: dict[str, tuple[str, float]] = {}  # refresh token -> (account, expiry)

    # -- identity -------------------------------------------------------------------

    def new_form(self) -> tuple[str, str]:
        cookie, token = secrets.token_urlsafe(16), "CfDJ8" + secrets.token_urlsafe(48)
        with self._lock:
            self._antiforgery[cookie] = token
        return cookie, token

    def form_ok(self, cookie: str | None, token: str | None) -> bool:
        with self._lock:
            expected = self._antiforgery.get(cookie or "")
        return bool(expected) and secrets.compare_digest(expected, token or "")

    def check_password(self, email: str, password: str) -> bool:
        return any(email and email.lower() == c["email"].lower() and password == c["password"]
                   for c in self.settings.credentials)

    def open_session(self, email: str) -> str:
        cookie = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[cookie] = email
        return cookie

    def session(self, cookie: str | None) -> str | None:
        with self._lock:
            return self._sessions.get(cookie or "")

    def issue_code(self, account: str, challenge: str) -> str:
        code = secrets.token_hex(32).upper()
        with self._lock:
            self._codes[code] = (account, challenge, self.clock() + CODE_TTL_S)
        return code

    def redeem_code(self, code: str, verifier: str) -> str | None:
        """The account, once per code, when the verifier's S256 is the challenge."""
        with self._lock:
            entry = self._codes.pop(code, None)  # single use, even when the verifier is wrong
        if entry is None or self.clock() >= entry[2]:
            return None
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        return entry[0] if secrets.compare_digest(digest, entry[1]) else None

    def tokens(self, account: str) -> dict:
        refresh = secrets.token_hex(32).upper()
        with self._lock:
            self._refresh[refresh] = (account, self.clock() + self.settings.refresh_ttl_s)
        return {"access_token": self.access.issue(account, prefix="eyJ"), "expires_in": int(self.state.config.token_ttl_s),
                "token_type": "Bearer", "id_token": "eyJ" + secrets.token_hex(24), "refresh_token": refresh,
                "scope": SCOPE}

    def use_refresh(self, token: str) -> str | None:
        """The account of a live refresh token (which is then spent: tokens rotate)."""
        with self._lock:
            entry = self._refresh.pop(token, None)
        if entry is None or self.clock() >= entry[1]:
            return None
        return entry[0]

    def expire_access_tokens(self) -> None:
        """Every access token refused from now on (tests: force the refresh path)."""
        self.access.revoke_all()

    def expire_refresh_tokens(self) -> None:
        with self._lock:
            self._refresh.clear()

    # -- data ---------------------------------------------------------------------------

    def group(self, group_id: str) -> PlantProfile | None:
        profile = self.settings.groups.get(group_id)
        if profile is not None:
            return profile
        if re.fullmatch(r"grp-[0-9A-Za-z-]+", group_id) and self.state.config.unknown_plants == "default":
            return default_profile(group_id)
        return None


def install(app: FastAPI, settings: MondoSettings) -> MondoCloud:
    """Configure the emulated Mondo of ``app`` (the clock and token TTL are the app's)."""
    mondo = MondoCloud(settings, app.state.cloud)
    app.state.mondo = mondo
    return mondo


def mondo_of(request: Request) -> MondoCloud:
    mondo = getattr(request.app.state, "mondo", None)
    if mondo is None:
        with _install_lock:
            mondo = getattr(request.app.state, "mondo", None) or install(request.app, MondoSettings())
    return mondo


_install_lock = threading.Lock()


def _record(request: Request, endpoint: str, status: int, fault: str | None = None,
            plant_id: str | None = None, **kw) -> None:
    cloud(request).stats.add(CallRecord(VENDOR, endpoint, status, fault, plant_id, **kw))


# -- identity routes ------------------------------------------------------------------------


@router.get("/Account/Login")
async def login_page(request: Request, ReturnUrl: str = "/") -> Response:  # noqa: N803 - the real name
    early, _ = await before_call(request, VENDOR, "login_page", "Too Many Requests")
    if early is not None:
        return early
    cookie, token = mondo_of(request).new_form()
    _record(request, "login_page", 200)
    page = _LOGIN_FORM.format(message="", return_url=html.escape(ReturnUrl, quote=True), token=token)
    response = HTMLResponse(page)
    response.set_cookie(ANTIFORGERY_COOKIE, cookie, httponly=True, samesite="strict")
    return response


@router.post("/Account/Login")
async def login_submit(request: Request, ReturnUrl: str = "/") -> Response:  # noqa: N803
    early, _ = await before_call(request, VENDOR, "login", "Too Many Requests")
    if early is not None:
        return early
    mondo = mondo_of(request)
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
    if not mondo.form_ok(request.cookies.get(ANTIFORGERY_COOKIE), form.get("__RequestVerificationToken")):
        _record(request, "login", 400, error="antiforgery")
        return HTMLResponse("<html><body><h1>400 Bad Request</h1></body></html>", status_code=400)
    email = form.get("Email", "")
    if not mondo.check_password(email, form.get("Password", "")):
        _record(request, "login", 200, error="auth")
        _cookie, token = mondo.new_form()
        page = _LOGIN_FORM.format(message="<div class=\"validation-summary-errors\">Invalid login attempt</div>",
                                  return_url=html.escape(ReturnUrl, quote=True), token=token)
        return HTMLResponse(page)
    _record(request, "login", 302)
    response = RedirectResponse(ReturnUrl if ReturnUrl.startswith("/") else "/", status_code=302)
    response.set_cookie(IDENTITY_COOKIE, mondo.open_session(email.lower()), httponly=True, samesite="lax")
    return response


@router.get("/connect/authorize")
@router.get("/connect/authorize/callback")  # where the login page sends the browser back
async def authorize(request: Request) -> Response:
    early, _ = await before_call(request, VENDOR, "authorize", "Too Many Requests")
    if early is not None:
        return early
    mondo = mondo_of(request)
    q = request.query_params
    if (q.get("client_id") != CLIENT_ID or q.get("redirect_uri") != REDIRECT_URI or q.get("response_type") != "code"
            or q.get("code_challenge_method") != "S256" or not q.get("code_challenge")
            or set(SCOPE.split()) - set(str(q.get("scope", "")).split())):
        _record(request, "authorize", 400, error="param")
        return HTMLResponse("<html><body><h1>Sorry, there was an error : invalid_request</h1></body></html>",
                            status_code=400)
    account = mondo.session(request.cookies.get(IDENTITY_COOKIE))
    if account is None:  # not logged in: the identity server sends the browser to its login page
        _record(request, "authorize", 302, error="auth")
        back = "/connect/authorize/callback?" + urlencode(dict(q))
        return RedirectResponse("/Account/Login?" + urlencode({"ReturnUrl": back}), status_code=302)
    code = mondo.issue_code(account, str(q["code_challenge"]))
    _record(request, "authorize", 302)
    target = REDIRECT_URI + "?" + urlencode({"code": code, "scope": SCOPE, "state": q.get("state", ""),
                                             "session_state": secrets.token_urlsafe(16)})
    return RedirectResponse(target, status_code=302)


@router.post("/connect/token")
async def token(request: Request) -> Response:
    early, _ = await before_call(request, VENDOR, "token", {"error": "temporarily_unavailable"})
    if early is not None:
        return early
    mondo = mondo_of(request)
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
    grant = form.get("grant_type")
    if form.get("client_id") != CLIENT_ID:
        _record(request, "token", 400, error="auth")
        return JSONResponse({"error": "invalid_client"}, status_code=400)
    if grant == "authorization_code":
        account = (mondo.redeem_code(form.get("code", ""), form.get("code_verifier", ""))
                   if form.get("redirect_uri") == REDIRECT_URI else None)
    elif grant == "refresh_token":
        account = mondo.use_refresh(form.get("refresh_token", ""))
    else:
        _record(request, "token", 400, error="param")
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
    if account is None:
        _record(request, "token", 400, error="token")
        return JSONResponse({"error": "invalid_grant"}, status_code=400)
    _record(request, "token", 200, error=None, window=(grant, ""))
    return JSONResponse(mondo.tokens(account), headers={"Cache-Control": "no-store"})


# -- API routes -------------------------------------------------------------------------------


def _bearer(request: Request, mondo: MondoCloud, endpoint: str) -> tuple[str | None, Response | None]:
    header = request.headers.get("authorization", "")
    account = mondo.access.account(header[7:].strip()) if header.lower().startswith("bearer ") else None
    if account is None:
        _record(request, endpoint, 401, error="token")
        return None, Response(status_code=401, headers={
            "WWW-Authenticate": 'Bearer error="invalid_token", error_description="The access token is expired"'})
    limited = account_limited(cloud(request), VENDOR, endpoint, account, "Too Many Requests")
    return account, limited


@router.get("/monitoring/organizations")
async def organizations(request: Request) -> Response:
    early, fault = await before_call(request, VENDOR, "organizations", "Too Many Requests")
    if early is not None:
        return early
    mondo = mondo_of(request)
    _account, refusal = _bearer(request, mondo, "organizations")
    if refusal is not None:
        return refusal
    _record(request, "organizations", 200, fault, records=1)
    return JSONResponse([{"id": mondo.settings.organization_id, "name": "Wattline demo"}])


@router.get("/monitoring/organizations/{org_id}/monitoringpointgroups")
async def groups(request: Request, org_id: str) -> Response:
    early, fault = await before_call(request, VENDOR, "monitoringpointgroups", "Too Many Requests")
    if early is not None:
        return early
    mondo = mondo_of(request)
    _account, refusal = _bearer(request, mondo, "monitoringpointgroups")
    if refusal is not None:
        return refusal
    if org_id != mondo.settings.organization_id:
        _record(request, "monitoringpointgroups", 403, fault, error="plant")
        return Response(status_code=403)
    rows = [{"id": gid, "name": p.name or gid, "timeZone": p.timezone} for gid, p in sorted(mondo.settings.groups.items())]
    _record(request, "monitoringpointgroups", 200, fault, records=len(rows))
    return JSONResponse(rows)


def _group_or_refusal(request: Request, mondo: MondoCloud, group_id: str, endpoint: str, fault):
    profile = mondo.group(group_id)
    if profile is None:
        # the real API: a point id (or any id the account may not see) is 403, not 404
        _record(request, endpoint, 403, fault, group_id, error="plant")
        return None, Response(status_code=403)
    return profile, None


def _utc(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@router.get("/liveusage/widget/{group_id}")
async def live_usage(request: Request, group_id: str) -> Response:
    early, fault = await before_call(request, VENDOR, "liveusage", "Too Many Requests")
    if early is not None:
        return early
    mondo = mondo_of(request)
    _account, refusal = _bearer(request, mondo, "liveusage")
    if refusal is not None:
        return refusal
    profile, refusal = _group_or_refusal(request, mondo, group_id, "liveusage", fault)
    if refusal is not None:
        return refusal
    now = int(mondo.clock())
    recorded = now - now % 60  # the platform records once a minute: polls within it repeat
    f = home_flow(group_id, profile, recorded, cloud(request).config.history_source)
    battery: dict = {"deviceStatus": "Online", "value": round(f.battery_kw, 2), "stateOfCharge": round(f.soc_pct)}
    body = {
        "demand": round(f.load_kw, 2),
        "lastRecordedUtc": _utc(recorded),
        "liveUsageData": {
            "battery": battery,
            "generator": {"deviceStatus": "Offline", "value": 0},
            "grid": {"deviceStatus": "Online", "value": round(f.grid_kw, 2)},
            "solar": {"deviceStatus": "Online", "value": round(f.solar_kw, 2)},
        },
    }
    if fault == "malformed":
        battery["stateOfCharge"] = "n/a"  # seen on other endpoints
    _record(request, "liveusage", 200, fault, group_id, window=(_utc(recorded), ""), records=1)
    return JSONResponse(body)


@router.get("/subcircuit/{group_id}")
async def subcircuit(request: Request, group_id: str) -> Response:
    early, fault = await before_call(request, VENDOR, "subcircuit", "Too Many Requests")
    if early is not None:
        return early
    mondo = mondo_of(request)
    _account, refusal = _bearer(request, mondo, "subcircuit")
    if refusal is not None:
        return refusal
    profile, refusal = _group_or_refusal(request, mondo, group_id, "subcircuit", fault)
    if refusal is not None:
        return refusal
    now = int(mondo.clock())
    f = home_flow(group_id, profile, now - now % 60, cloud(request).config.history_source)
    name = profile.name or group_id

    def row(n: int, label: str, load_type: str, power_kw: float, total_kwh: float, **extra) -> dict:
        return {"monitoringPointId": f"pt-{group_id}-{n}", "monitoringPointName": label,
                "monitoringPointGroupName": name, "loadType": load_type,
                "energyNowW": round(power_kw * 1000.0), "totalEnergyWh": round(total_kwh * 1000.0), **extra}

    rows = [
        row(1, "Solar", "PvInverter", f.solar_kw, f.solar_kwh, totalEnergyTodayWh=round(f.solar_today_kwh * 1000.0)),
        row(2, "Battery", "HybridBattery", f.battery_kw, f.battery_kwh),
        row(3, "Grid", "GateMeter", f.grid_kw, f.grid_import_kwh),
        row(4, "Hot water", "Other", 0.0, f.other_kwh),
    ]
    if fault == "malformed":
        for i, _field, mode in cloud(request).faults.corruptions(len(rows), ["totalEnergyWh", "energyNowW"]):
            if mode == "missing":
                rows[i].pop(_field, None)
            else:
                rows[i][_field] = "n/a" if mode == "non_numeric" else None
    _record(request, "subcircuit", 200, fault, group_id, records=len(rows))
    return JSONResponse({"rows": rows})

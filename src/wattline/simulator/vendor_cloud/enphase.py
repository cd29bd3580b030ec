"""Emulated Enphase Enlighten API v4 and its OAuth 2.0 authorization server.

==================================================  ===================================
``GET  /oauth/authorize``                           ``response_type=code``,
                                                    ``client_id``, ``redirect_uri``,
                                                    ``state``: the (emulated) owner
                                                    approves at once; 302 to
                                                    ``redirect_uri?code=…&state=…``
``POST /oauth/token``                               HTTP Basic ``client_id:secret``;
                                                    ``grant_type=authorization_code``
                                                    (``code``, ``redirect_uri``) or
                                                    ``refresh_token`` (``refresh_token``)
``GET  /api/v4/systems``                            ``key``, ``page``, ``size``
``GET  /api/v4/systems/{id}/summary``               ``key``
``GET  /api/v4/systems/{id}/telemetry/production_micro``  ``key``, ``start_at`` (epoch s),
                                                    ``granularity`` 15mins | day | week
==================================================  ===================================

Like the real service, where it hurts:

* every API call needs both the application's ``key`` (query) and a user's
  ``Authorization: Bearer <access_token>``; a missing/expired token is 401
  ``{"message": "Not Authorized", "details", "code": 401}``;
* access tokens live ``access_ttl_s`` (a day), refresh tokens ``refresh_ttl_s`` (a
  month); a refresh **rotates** the refresh token (the old one stops working), and an
  authorization code works once, for the ``redirect_uri`` it was issued to, for 10 min;
* a token answer can be held after the grant is spent (``token_answer_delay_s``), as a
  slow link does: a client that gives up then holds only the spent refresh token;
* the free "Watt" plan: **10 calls per minute and 1,000 per month** per application
  (OAuth calls excluded); beyond either, 429 ``{"message": "Too Many Requests",
  "details": "Usage limit exceeded for plan Watt", "code": 429}`` with ``Retry-After``
  (to the next minute, or to the next month);
* telemetry: 15-minute intervals, each ``{end_at, devices_reporting, powr (W, the
  interval's mean), enwh (Wh in the interval)}``, from ``start_at`` for 15 minutes, a
  day or a week; none before the system became operational or after now; a
  ``start_at`` in the future is 422.

Production comes from the simulator (``history.plant_series``). Injected faults
(``CloudConfig.fault_rate``) apply to the API calls, not to the OAuth server.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from .common import before_call, cloud
from .config import PlantProfile
from .history import plant_series
from .state import CallRecord, CloudState

VENDOR = "enphase"
DEMO_CLIENT_ID = "wattline-demo-client"
DEMO_CLIENT_SECRET = "wattline-demo-client-secret"
DEMO_API_KEY = "wattline-demo-enphase-key"
DEMO_SYSTEM = "2875"
INTERVAL_S = 900
SPANS = {"15mins": 900, "day": 86400, "week": 7 * 86400}
RECORD_FIELDS = ["end_at", "powr", "enwh"]
PLAN = "Watt"

router = APIRouter()


@dataclass
class EnphaseSettings:
    """What the emulated Enphase accepts and serves (change before ``start()``)."""

    clients: dict[str, str] = field(default_factory=lambda: {DEMO_CLIENT_ID: DEMO_CLIENT_SECRET})
    api_keys: list[str] = field(default_factory=lambda: [DEMO_API_KEY])
    systems: dict[str, PlantProfile] = field(default_factory=lambda: {DEMO_SYSTEM: PlantProfile(
        start_operating_ts=1704067200, capacity_kw=8.2, latitude=-33.87, longitude=151.21,
        timezone="Australia/Sydney", name="Enphase demo house")})
    access_ttl_s: float = 86400.0
    refresh_ttl_s: float = 30 * 86400.0
    code_ttl_s: float = 600.0
    calls_per_minute: int = 10
    calls_per_month: int = 1000
    watts_per_micro: float = 290.0  # an IQ7+; devices_reporting = capacity / this
    #: seconds a token answer is held after the grant was spent (a slow network or a
    #: loaded server: the client may give up on an answer that already rotated its token)
    token_answer_delay_s: float = 0.0


class OAuthServer:
    """Authorization codes, access and refresh tokens (by the cloud's clock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[str, tuple[str, str, float]] = {}  # code -> (client, redirect_uri, expires)
        self._access: dict[str, tuple[str, float]] = {}  # token -> (client, expires)
        self._refresh: dict[str, tuple[str, float]] = {}

    def issue_code(self, client: str, redirect_uri: str, now: float, ttl: float) -> str:
        code = secrets.token_urlsafe(6)
        with self._lock:
            self._codes[code] = (client, redirect_uri, now + ttl)
        return code

    def redeem_code(self, code: str, client: str, redirect_uri: str, now: float) -> bool:
        with self._lock:
            entry = self._codes.pop(code, None)  # single use, even when refused
        return entry is not None and entry[0] == client and entry[1] == redirect_uri and now < entry[2]

    def issue_tokens(self, client: str, now: float, s: EnphaseSettings) -> dict:
        access, refresh = secrets.token_hex(24), secrets.token_hex(24)
        with self._lock:
            self._access[access] = (client, now + s.access_ttl_s)
            self._refresh[refresh] = (client, now + s.refresh_ttl_s)
        return {"access_token": access, "token_type": "bearer", "refresh_token": refresh,
                "expires_in": int(s.access_ttl_s) - 1, "scope": "read write", "enl_uid": "4242",
                "enl_cid": "1", "enl_password_last_changed": "1704067200", "is_internal_app": False,
                "app_type": "partner", "jti": secrets.token_hex(8)}

    def rotate(self, refresh: str, client: str, now: float) -> bool:
        """Spend a refresh token (it stops working once used)."""
        with self._lock:
            entry = self._refresh.pop(refresh, None)
        return entry is not None and entry[0] == client and now < entry[1]

    def valid_access(self, token: str, now: float) -> bool:
        with self._lock:
            entry = self._access.get(token)
            if entry is None:
                return False
            if now >= entry[1]:
                del self._access[token]
                return False
            return True

    def expire_access_tokens(self) -> None:
        """Tests: every access token is refused from now on (refresh tokens still work)."""
        with self._lock:
            self._access.clear()


class PlanLimiter:
    """The application plan's limits: calls per (fixed) minute and per calendar month."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._minute: dict[tuple[str, int], int] = {}
        self._month: dict[tuple[str, int, int], int] = {}

    def take(self, key: str, now: float, s: EnphaseSettings) -> int | None:
        """None if the call may go ahead (and count it), else the Retry-After seconds."""
        minute = int(now // 60)
        d = datetime.fromtimestamp(now, timezone.utc)
        month = (key, d.year, d.month)
        with self._lock:
            if self._month.get(month, 0) >= s.calls_per_month:
                y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
                return max(1, int(datetime(y, m, 1, tzinfo=timezone.utc).timestamp() - now))
            if self._minute.get((key, minute), 0) >= s.calls_per_minute:
                return max(1, int(60 - now % 60))
            self._minute[(key, minute)] = self._minute.get((key, minute), 0) + 1
            self._month[month] = self._month.get(month, 0) + 1
            if len(self._minute) > 10_000:
                self._minute = {k: v for k, v in self._minute.items() if k[1] >= minute}
            return None

    def used_this_month(self, key: str, now: float) -> int:
        d = datetime.fromtimestamp(now, timezone.utc)
        with self._lock:
            return self._month.get((key, d.year, d.month), 0)

    def set_month_usage(self, key: str, now: float, calls: int) -> None:
        """Tests: start the month with ``calls`` already used."""
        d = datetime.fromtimestamp(now, timezone.utc)
        with self._lock:
            self._month[(key, d.year, d.month)] = int(calls)


class EnphaseCloud:
    """The emulated Enphase's settings, OAuth server and plan limiter, on ``app.state.enphase``."""

    def __init__(self, settings: EnphaseSettings | None = None) -> None:
        self.settings = settings or EnphaseSettings()
        self.oauth = OAuthServer()
        self.plan = PlanLimiter()


def install(app: FastAPI) -> None:
    app.state.enphase = EnphaseCloud()
    app.include_router(router, tags=["enphase"])


def enphase_cloud(request: Request) -> EnphaseCloud:
    return request.app.state.enphase


# -- OAuth ------------------------------------------------------------------------------


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


@router.get("/oauth/authorize")
async def authorize(request: Request) -> Response:
    state = cloud(request)
    ec = enphase_cloud(request)
    q = request.query_params
    client, redirect_uri = q.get("client_id", ""), q.get("redirect_uri", "")
    if q.get("response_type") != "code":
        state.stats.add(CallRecord(VENDOR, "authorize", 400, error="param"))
        return _oauth_error(400, "unsupported_response_type", "response_type must be code")
    if client not in ec.settings.clients:
        state.stats.add(CallRecord(VENDOR, "authorize", 400, error="auth"))
        return _oauth_error(400, "invalid_client", "Unknown client_id")
    if urlsplit(redirect_uri).scheme not in ("http", "https"):
        state.stats.add(CallRecord(VENDOR, "authorize", 400, error="param"))
        return _oauth_error(400, "invalid_request", "redirect_uri must be an absolute http(s) URL")
    # the emulated system owner signs in and approves the application straight away
    code = ec.oauth.issue_code(client, redirect_uri, state.now(), ec.settings.code_ttl_s)
    back = {"code": code}
    if "state" in q:
        back["state"] = q["state"]
    state.stats.add(CallRecord(VENDOR, "authorize", 302))
    sep = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(redirect_uri + sep + urlencode(back), status_code=302)


def _basic_client(request: Request, ec: EnphaseCloud) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client, _, secret = base64.b64decode(value.strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    expected = ec.settings.clients.get(client)
    return client if expected is not None and secrets.compare_digest(expected, secret) else None


@router.post("/oauth/token")
async def token(request: Request) -> Response:
    state = cloud(request)
    ec = enphase_cloud(request)
    params = dict(request.query_params)
    form = await request.body()
    if form:  # the grant may come as a form body too
        from urllib.parse import parse_qsl

        params.update(dict(parse_qsl(form.decode(errors="replace"))))
    client = _basic_client(request, ec)
    if client is None:
        state.stats.add(CallRecord(VENDOR, "token", 401, error="auth"))
        return _oauth_error(401, "unauthorized", "Bad credentials")
    grant, now = params.get("grant_type"), state.now()
    if grant == "authorization_code":
        if not ec.oauth.redeem_code(params.get("code", ""), client, params.get("redirect_uri", ""), now):
            state.stats.add(CallRecord(VENDOR, "token", 400, error="grant"))
            return _oauth_error(400, "invalid_grant", "Invalid authorization code")
    elif grant == "refresh_token":
        if not ec.oauth.rotate(params.get("refresh_token", ""), client, now):
            state.stats.add(CallRecord(VENDOR, "token", 401, error="grant"))
            return _oauth_error(401, "invalid_token", "Invalid refresh token")
    else:
        state.stats.add(CallRecord(VENDOR, "token", 400, error="param"))
        return _oauth_error(400, "unsupported_grant_type", f"Unsupported grant type: {grant}")
    state.stats.add(CallRecord(VENDOR, "token", 200, window=(grant, "")))
    answer = ec.oauth.issue_tokens(client, now, ec.settings)
    if ec.settings.token_answer_delay_s > 0:
        await asyncio.sleep(ec.settings.token_answer_delay_s)
    return JSONResponse(answer)


# -- the API ----------------------------------------------------------------------------


def _api_error(status: int, message: str, details: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"message": message, "details": details, "code": status}, status_code=status,
                        headers=headers)


_RATE_BODY = {"message": "Too Many Requests", "details": f"Usage limit exceeded for plan {PLAN}", "code": 429}


def _gate(request: Request, state: CloudState, endpoint: str, system: str | None = None) -> Response | None:
    """The application key, the user's token, then the plan's limits."""
    ec = enphase_cloud(request)
    key = request.query_params.get("key", "")
    if key not in ec.settings.api_keys:
        state.stats.add(CallRecord(VENDOR, endpoint, 401, plant_id=system, error="auth"))
        return _api_error(401, "Not Authorized", "Not authorized to access requested resource.")
    scheme, _, tok = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not ec.oauth.valid_access(tok.strip(), state.now()):
        state.stats.add(CallRecord(VENDOR, endpoint, 401, plant_id=system, error="token"))
        return _api_error(401, "Not Authorized", "Invalid or expired access token")
    retry = ec.plan.take(key, state.now(), ec.settings)
    if retry is not None:
        state.stats.add(CallRecord(VENDOR, endpoint, 429, plant_id=system, error="rate_limit"))
        return JSONResponse(_RATE_BODY, status_code=429, headers={"Retry-After": str(retry)})
    return None


def _system(request: Request, state: CloudState, endpoint: str, system_id: str) -> PlantProfile | Response:
    profile = enphase_cloud(request).settings.systems.get(system_id)
    if profile is None:
        state.stats.add(CallRecord(VENDOR, endpoint, 404, plant_id=system_id, error="plant"))
        return _api_error(404, "Not Found", "Requested system was not found")
    return profile


def _devices(ec: EnphaseCloud, profile: PlantProfile) -> int:
    return max(1, int(round(profile.capacity_kw * 1000 / ec.settings.watts_per_micro)))


def _system_json(system_id: str, profile: PlantProfile, devices: int) -> dict:
    return {"system_id": int(system_id) if system_id.isdigit() else system_id, "name": profile.name,
            "public_name": "Residential System", "timezone": profile.timezone,
            "address": {"state": "NSW", "country": "AU", "postal_code": "2000"},
            "connection_type": "wifi", "status": "normal", "system_size": profile.capacity_kw * 1000,
            "operational_at": profile.start_operating_ts, "modules": devices,
            "attachment_type": "rack_mount", "interconnect_date": None}


@router.get("/api/v4/systems")
async def systems(request: Request) -> Response:
    state = cloud(request)
    early, _fault = await before_call(request, VENDOR, "systems", _RATE_BODY)
    if early is not None:
        return early
    refused = _gate(request, state, "systems")
    if refused is not None:
        return refused
    ec = enphase_cloud(request)
    try:
        page = int(request.query_params.get("page", "1"))
        size = int(request.query_params.get("size", "10"))
    except ValueError:
        page, size = 0, 0
    if page < 1 or not 1 <= size <= 100:
        state.stats.add(CallRecord(VENDOR, "systems", 422, error="param"))
        return _api_error(422, "Unprocessable Entity", "page must be >= 1 and size within 1..100")
    all_systems = sorted(ec.settings.systems.items())
    chunk = all_systems[(page - 1) * size: page * size]
    out = [_system_json(sid, p, _devices(ec, p)) for sid, p in chunk]
    state.stats.add(CallRecord(VENDOR, "systems", 200, page=page, records=len(out)))
    return JSONResponse({"total": len(all_systems), "current_page": page, "size": size, "count": len(out),
                         "items": "systems", "systems": out})


def _intervals(ec: EnphaseCloud, system_id: str, profile: PlantProfile, start: int, end: int, now: float,
               source: str) -> list[dict]:
    """15-minute intervals ending in ``(start, end]`` (and by now): Wh and mean W."""
    first_end = (start // INTERVAL_S + 1) * INTERVAL_S
    series = plant_series(system_id, profile, first_end - INTERVAL_S, end + 1, now, source)
    at = dict(zip(series.ts.tolist(), series.energy_total_kwh.tolist()))
    devices = _devices(ec, profile)
    out = []
    for t in range(first_end, end + 1, INTERVAL_S):
        a, b = at.get(t - INTERVAL_S), at.get(t)
        if a is None or b is None:
            continue  # not operational yet, or not reported yet
        enwh = int(round((b - a) * 1000.0))
        out.append({"end_at": t, "devices_reporting": devices, "powr": int(round(enwh * 3600 / INTERVAL_S)),
                    "enwh": enwh})
    return out


@router.get("/api/v4/systems/{system_id}/telemetry/production_micro")
async def production_micro(request: Request, system_id: str) -> Response:
    state = cloud(request)
    endpoint = "production_micro"
    early, fault = await before_call(request, VENDOR, endpoint, _RATE_BODY)
    if early is not None:
        return early
    refused = _gate(request, state, endpoint, system_id)
    if refused is not None:
        return refused
    found = _system(request, state, endpoint, system_id)
    if isinstance(found, Response):
        return found
    ec, now = enphase_cloud(request), state.now()
    granularity = request.query_params.get("granularity", "day")
    raw_start = request.query_params.get("start_at")
    problem = None
    try:
        start = int(raw_start) if raw_start is not None else int(now // 86400) * 86400
    except ValueError:
        start, problem = 0, "start_at must be epoch seconds"
    if problem is None and granularity not in SPANS:
        problem = "granularity must be one of 15mins, day, week"
    if problem is None and start > now:
        problem = "Requested date range is invalid for this system"
    if problem:
        state.stats.add(CallRecord(VENDOR, endpoint, 422, fault, system_id, error="param"))
        return _api_error(422, "Unprocessable Entity", problem)
    end = start + SPANS[granularity]
    items = _intervals(ec, system_id, found, start, end, now, state.config.history_source)
    if fault == "malformed":
        for i, fld, mode in state.faults.corruptions(len(items), RECORD_FIELDS):
            if mode == "missing":
                items[i].pop(fld, None)
            else:
                items[i][fld] = "N/A" if mode == "non_numeric" else None
    state.stats.add(CallRecord(VENDOR, endpoint, 200, fault, system_id, (str(start), granularity),
                               records=len(items)))
    return JSONResponse({"system_id": int(system_id) if system_id.isdigit() else system_id,
                         "granularity": granularity, "total_devices": _devices(ec, found), "start_at": start,
                         "end_at": end, "items": "intervals", "intervals": items,
                         "meta": {"status": "normal", "last_report_at": int(now), "last_energy_at": int(now),
                                  "operational_at": found.start_operating_ts}})


@router.get("/api/v4/systems/{system_id}/summary")
async def summary(request: Request, system_id: str) -> Response:
    state = cloud(request)
    early, _fault = await before_call(request, VENDOR, "summary", _RATE_BODY)
    if early is not None:
        return early
    refused = _gate(request, state, "summary", system_id)
    if refused is not None:
        return refused
    found = _system(request, state, "summary", system_id)
    if isinstance(found, Response):
        return found
    ec, now = enphase_cloud(request), state.now()
    last = int(now // INTERVAL_S) * INTERVAL_S
    items = _intervals(ec, system_id, found, last - INTERVAL_S, last, now, state.config.history_source)
    total = plant_series(system_id, found, last, last + 1, now, state.config.history_source)
    state.stats.add(CallRecord(VENDOR, "summary", 200, plant_id=system_id, records=1))
    return JSONResponse({
        "system_id": int(system_id) if system_id.isdigit() else system_id,
        "current_power": items[-1]["powr"] if items else 0,
        "energy_lifetime": int(round(float(total.energy_total_kwh[-1]) * 1000)) if len(total) else 0,
        "energy_today": int(round(float(total.energy_today_kwh[-1]) * 1000)) if len(total) else 0,
        "last_interval_end_at": last, "last_report_at": int(now), "modules": _devices(ec, found),
        "operational_at": found.start_operating_ts, "size_w": int(found.capacity_kw * 1000),
        "source": "microinverters", "status": "normal", "summary_date": datetime.fromtimestamp(
            now, timezone.utc).strftime("%Y-%m-%d")})


__all__ = ["DEMO_API_KEY", "DEMO_CLIENT_ID", "DEMO_CLIENT_SECRET", "DEMO_SYSTEM", "EnphaseCloud",
           "EnphaseSettings", "install", "router"]

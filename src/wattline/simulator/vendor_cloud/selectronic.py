"""Emulated Selectronic select.live, under its real paths, in the captured shape.

====================================  ==================================================
``POST /login``                       form ``email``, ``pwd``: 302 to /dashboard/systems
                                      + ``mojolicious`` cookie; a wrong login is 200 with
                                      "Bad email address or password"
``GET /dashboard/hfdata/{system}``    ``{device, item_count, items, now}``; without a
                                      live session: 302 to ``/login``
====================================  ==================================================

Values come from the simulator's engine (:mod:`.homes`): ``*_w`` in W with the SP PRO's
signs (``grid_w`` import **negative**, ``battery_w`` + discharging), ``*_wh_*`` in
**kWh** despite their names, ``battery_soc`` %, ``timestamp``/``now`` epoch s (the
inverter samples once a minute). Where it hurts, as the real portal:

* sessions last ``session_ttl_s`` (30 min) by the emulator's clock;
* every call (login included) answers 500 or 503 while the minute of the hour lies in
  ``outage_minutes`` (``[48, 52)``; ``None`` turns it off), by the emulator's clock,
  and, with ``midnight_504_minutes``, 504 for that long after Sydney's midnight;
* the shared faults of :mod:`.common` (429, 5xx, slow, malformed: a field made
  non-numeric or the timestamp removed).

Configure with :func:`install` before the app starts (tests), else the defaults hold:
the account ``demo@wattline.local`` / ``wattline-demo`` and any system number, each a
Sydney home with 6.6 kWp and 13.5 kWh starting 14 days before first contact.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from wattline.domain.timeutil import local_date, local_midnight

from .common import before_call, cloud, server_error
from .homes import HomeProfile, home_history
from .state import CallRecord

VENDOR = "selectronic"
COOKIE = "mojolicious"
DEFAULT_CREDENTIALS = {"email": "demo@wattline.local", "password": "wattline-demo"}
LOGIN_PAGE = (
    "<html><head><title>select.live</title></head><body><form method=\"post\" action=\"/login\">"
    "{message}<input name=\"email\"><input name=\"pwd\" type=\"password\"><button>Login</button>"
    "</form></body></html>"
)

router = APIRouter()


@dataclass
class SelectronicSettings:
    """Accounts, systems and the portal's quirks (times by the emulator's clock)."""

    credentials: list[dict[str, str]] = field(default_factory=lambda: [dict(DEFAULT_CREDENTIALS)])
    systems: dict[str, HomeProfile] = field(default_factory=dict)
    session_ttl_s: float = 1800.0
    outage_minutes: tuple[int, int] | None = (48, 52)  # [from, to) minute of the hour
    # 504s in the first minutes after local midnight (measured: 00:00-00:20 Sydney); off by default
    midnight_504_minutes: int | None = None
    midnight_zone: str = "Australia/Sydney"
    default_history_days: int = 14


class SelectronicCloud:
    """Sessions and systems of one emulated portal (thread-safe)."""

    def __init__(self, settings: SelectronicSettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[str, float]] = {}
        self._defaults: dict[str, HomeProfile] = {}

    def login(self, email: str, password: str) -> str | None:
        for cred in self.settings.credentials:
            if email and email == cred.get("email") and password == cred.get("password"):
                cookie = secrets.token_urlsafe(24)
                with self._lock:
                    self._sessions[cookie] = (email, self.clock() + self.settings.session_ttl_s)
                return cookie
        return None

    def session(self, cookie: str | None) -> str | None:
        """The account of a live session, or None (unknown or expired)."""
        with self._lock:
            entry = self._sessions.get(cookie or "")
            if entry is None:
                return None
            if self.clock() >= entry[1]:
                del self._sessions[cookie or ""]
                return None
            return entry[0]

    def expire_sessions(self) -> None:
        """End every session now (tests: the portal forgot us before 30 minutes)."""
        with self._lock:
            self._sessions.clear()

    def outage_status(self) -> int | None:
        """The 5xx the portal answers now, or None."""
        now = self.clock()
        late = self.settings.midnight_504_minutes
        if late:
            tz = self.settings.midnight_zone
            if now - local_midnight(local_date(int(now), tz), tz) < late * 60:
                return 504
        window = self.settings.outage_minutes
        if window is not None and window[0] <= int(now // 60) % 60 < window[1]:
            return 503 if int(now) % 2 else 500
        return None

    def profile(self, system: str) -> HomeProfile:
        configured = self.settings.systems.get(system)
        if configured is not None:
            return configured
        with self._lock:
            if system not in self._defaults:
                now = int(self.clock())
                tz = "Australia/Sydney"
                start = local_midnight(local_date(now - self.settings.default_history_days * 86400, tz), tz)
                self._defaults[system] = HomeProfile(start_ts=start, timezone=tz, name=f"SP PRO {system}")
            return self._defaults[system]


def install(app: FastAPI, settings: SelectronicSettings) -> SelectronicCloud:
    """Configure the portal of ``app`` (before it serves; the clock is the app's)."""
    portal = SelectronicCloud(settings, app.state.cloud.config.clock)
    app.state.selectronic = portal
    return portal


def portal_of(request: Request) -> SelectronicCloud:
    portal = getattr(request.app.state, "selectronic", None)
    if portal is None:
        portal = install(request.app, SelectronicSettings())
    return portal


def _outage(request: Request, portal: SelectronicCloud, endpoint: str) -> Response | None:
    """500 or 503 (alternating by the second) inside the minute-48-52 window; 504 after
    local midnight when configured."""
    code = portal.outage_status()
    if code is None:
        return None
    cloud(request).stats.add(CallRecord(VENDOR, endpoint, code, fault="outage"))
    return server_error(code)


@router.post("/login", include_in_schema=True)
async def login(request: Request) -> Response:
    portal = portal_of(request)
    early, _ = await before_call(request, VENDOR, "login", "Too Many Requests")
    if early is not None:
        return early
    outage = _outage(request, portal, "login")
    if outage is not None:
        return outage
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    email = (form.get("email") or [""])[0].strip()
    password = (form.get("pwd") or [""])[0]
    cookie = portal.login(email, password)
    state = cloud(request)
    if cookie is None:
        state.stats.add(CallRecord(VENDOR, "login", 200, error="auth"))
        page = LOGIN_PAGE.format(message="<p class=\"error\">Bad email address or password</p>")
        return Response(page, status_code=200, media_type="text/html")
    state.stats.add(CallRecord(VENDOR, "login", 302))
    response = RedirectResponse("/dashboard/systems", status_code=302)
    response.set_cookie(COOKIE, cookie, httponly=True, path="/")
    return response


def items_at(portal: SelectronicCloud, system: str, now: float) -> dict[str, float] | None:
    """The SP PRO's ``items`` at ``now`` (None before the system started)."""
    home = home_history(system, portal.profile(system))
    sample_ts = int(now) - int(now) % 60  # the inverter samples once a minute
    live, total, today = home.live_at(sample_ts), home.counters_at(sample_ts), home.today_at(sample_ts)
    if live is None or total is None or today is None:
        return None
    names = {"solar_energy_kwh": "solar", "load_energy_kwh": "load", "grid_import_energy_kwh": "grid_in",
             "grid_export_energy_kwh": "grid_out", "battery_charge_energy_kwh": "battery_in",
             "battery_discharge_energy_kwh": "battery_out"}
    items: dict[str, float] = {}
    for counter, name in names.items():
        items[f"{name}_wh_today"] = today[counter]  # kWh, whatever the name says
        items[f"{name}_wh_total"] = total[counter]
    items.update({
        "battery_soc": live["soc_pct"],
        "battery_w": live["battery_kw"] * 1000.0,
        "grid_w": -live["grid_kw"] * 1000.0,  # SP PRO: import negative
        "load_w": live["load_kw"] * 1000.0,
        "shunt_w": 0.0,  # AC-coupled PV: all of it through solarinverter_w
        "solarinverter_w": live["solar_kw"] * 1000.0,
        "fault_code": 0,
        "fault_ts": 0,
        "gen_status": 0,
        "timestamp": sample_ts,
    })
    return dict(sorted(items.items()))


@router.get("/dashboard/hfdata/{system}")
async def hfdata(system: str, request: Request) -> Response:
    portal = portal_of(request)
    state = cloud(request)
    early, fault = await before_call(request, VENDOR, "hfdata", "Too Many Requests")
    if early is not None:
        return early
    outage = _outage(request, portal, "hfdata")
    if outage is not None:
        return outage
    if portal.session(request.cookies.get(COOKIE)) is None:
        state.stats.add(CallRecord(VENDOR, "hfdata", 302, fault, system, error="token"))
        return RedirectResponse("/login", status_code=302)
    now = portal.clock()
    items = items_at(portal, system, now)
    if items is None:
        items = {}
    if fault == "malformed" and items:
        # what a broken answer looks like: a value that is not a number, or no timestamp
        if int(now) % 2:
            items["battery_soc"] = "N/A"  # type: ignore[assignment]
        else:
            del items["timestamp"]
    state.stats.add(CallRecord(VENDOR, "hfdata", 200, fault, system, records=1 if items else 0))
    return JSONResponse({"device": {"name": "Selectronic SP-PRO"}, "item_count": len(items),
                         "items": items, "now": int(now)})

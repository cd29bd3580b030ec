"""Emulated SolarEdge Monitoring API v1, under its real paths, in the captured shapes.

=========================================  ===========================================
``GET /sites/list``                        the key's sites (``sites.count``, ``site[]``)
``GET /site/{id}/details``                 ``details`` with ``location.timeZone``
``GET /site/{id}/energyDetails``           ``startTime``/``endTime`` (site-local),
                                           ``timeUnit`` QUARTER_OF_AN_HOUR | HOUR,
                                           ``meters``; values in Wh
``GET /site/{id}/powerDetails``            the same, 15-minute mean W
``GET /site/{id}/energy``, ``/power``      production only (``startDate``/``endDate``
                                           dates, resp. ``startTime``/``endTime``)
``GET /site/{id}/overview``                ``lastUpdateTime``, lifetime/day Wh, W
``GET /site/{id}/currentPowerFlow``        ``unit`` (kW by default) and unsigned powers
=========================================  ===========================================

Values come from the simulator's engine (:mod:`.homes`). Where it hurts, as the real API:

* ``api_key`` query parameter; a wrong one is 403 (Tomcat HTML), a site the key does
  not own 403 JSON ``{message}``, a missing parameter 400 (Tomcat HTML, as captured);
* dates are naive site-local wall times on a 96-slot grid per local day: the
  spring-forward hour's slots are present without ``value``; the fall-back hour
  appears once with the *sum* of both occurrences' energy (mean power); slots after
  "now" (or before the site started) have no ``value``;
* at night, every other zero Production slot comes without a value (``night_gaps``);
* quarter-hour ranges longer than ``max_range_days`` (27) are refused with 403 JSON;
* ``daily_quota`` (300) requests per key and per site a UTC day, then **429 without
  Retry-After**; more than ``max_concurrent`` (3) calls in flight from one client
  address: 429 with ``Retry-After: concurrency_retry_after_s`` (1; None: no header);
* the shared faults of :mod:`.common` (429, 5xx, slow, malformed values).

Configure with :func:`install` before the app starts; defaults: the key
``WATTLINE-DEMO-SOLAREDGE-KEY`` owning any site id, each a Berlin home (5 kWp, 10 kWh)
starting 14 days before first contact.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from wattline.domain.timeutil import local_date, local_midnight, zone

from .common import before_call, cloud
from .homes import HomeProfile, home_history
from .state import CallRecord

VENDOR = "solaredge"
DEFAULT_API_KEY = "WATTLINE-DEMO-SOLAREDGE-KEY"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
TOMCAT = (
    "<html>\n<body>\n\t<h1>HTTP Status {code} – {title}</h1>\n\t<hr class=\"line\" />\n"
    "\t<p><b>Type</b> Status Report</p>\n\t<p><b>Message</b> {message}</p>\n"
    "\t<p><b>Description</b> {description}</p>\n\t<hr class=\"line\" />\n"
    "\t<h3>Apache Tomcat/8.5.46</h3>\n</body>\n</html>\n"
)
ENERGY_METERS = {"PRODUCTION": "Production", "CONSUMPTION": "Consumption", "SELFCONSUMPTION": "SelfConsumption",
                 "FEEDIN": "FeedIn", "PURCHASED": "Purchased"}

router = APIRouter()


@dataclass
class SolarEdgeSettings:
    """Keys, sites and limits of the emulated API (times by the emulator's clock).

    ``keys``: api_key -> site ids it may read (``None``: any site).
    """

    keys: dict[str, set[str] | None] = field(default_factory=lambda: {DEFAULT_API_KEY: None})
    sites: dict[str, HomeProfile] = field(default_factory=dict)
    daily_quota: int = 300
    max_concurrent: int = 3
    concurrency_retry_after_s: int | None = 1
    max_range_days: int = 27
    power_flow_unit: str = "kW"
    hold_s: float = 0.0  # every answer held this long (makes concurrency observable)
    night_gaps: bool = True  # Production at night: every other zero slot comes without a value
    default_history_days: int = 14


class SolarEdgeCloud:
    """Quota counters, calls in flight and sites of one emulated API (thread-safe)."""

    def __init__(self, settings: SolarEdgeSettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._used: Counter = Counter()  # (day, "key:…" | "site:…") -> requests
        self._in_flight: Counter = Counter()
        self._defaults: dict[str, HomeProfile] = {}

    def profile(self, site: str) -> HomeProfile:
        configured = self.settings.sites.get(site)
        if configured is not None:
            return configured
        with self._lock:
            if site not in self._defaults:
                tz = "Europe/Berlin"
                now = int(self.clock())
                start = local_midnight(local_date(now - self.settings.default_history_days * 86400, tz), tz)
                self._defaults[site] = HomeProfile(start_ts=start, timezone=tz, latitude=52.52, longitude=13.40,
                                                   pv_kwp=5.0, battery_kwh=10.0, name=f"Site {site}")
            return self._defaults[site]

    def over_quota(self, key: str, site: str | None) -> bool:
        """Count one request; True (and not counted) when the key or site is out for today."""
        day = int(self.clock() // 86400)
        names = [f"key:{key}"] + ([f"site:{site}"] if site else [])
        with self._lock:
            if any(self._used[(day, n)] >= self.settings.daily_quota for n in names):
                return True
            for n in names:
                self._used[(day, n)] += 1
            return False

    def enter(self, client: str) -> bool:
        with self._lock:
            if self._in_flight[client] >= self.settings.max_concurrent:
                return False
            self._in_flight[client] += 1
            return True

    def leave(self, client: str) -> None:
        with self._lock:
            self._in_flight[client] -= 1


def install(app: FastAPI, settings: SolarEdgeSettings) -> SolarEdgeCloud:
    """Configure the API of ``app`` (before it serves; the clock is the app's)."""
    api = SolarEdgeCloud(settings, app.state.cloud.config.clock)
    app.state.solaredge = api
    return api


def api_of(request: Request) -> SolarEdgeCloud:
    api = getattr(request.app.state, "solaredge", None)
    if api is None:
        api = install(request.app, SolarEdgeSettings())
    return api


def _tomcat(code: int, title: str, message: str, description: str) -> Response:
    return Response(TOMCAT.format(code=code, title=title, message=message, description=description),
                    status_code=code, media_type="text/html")


async def _serve(request: Request, endpoint: str, site: str | None, work: Callable[[SolarEdgeCloud, HomeProfile | None], Any]) -> Response:
    """Faults, auth, concurrency and quota around one endpoint's ``work``."""
    api, state = api_of(request), cloud(request)
    client = request.client.host if request.client else "?"
    if not api.enter(client):
        state.stats.add(CallRecord(VENDOR, endpoint, 429, plant_id=site, error="concurrency"))
        headers = ({"Retry-After": str(api.settings.concurrency_retry_after_s)}
                   if api.settings.concurrency_retry_after_s is not None else {})
        return JSONResponse({"message": "Too many concurrent requests"}, status_code=429, headers=headers)
    try:
        early, fault = await before_call(request, VENDOR, endpoint, {"message": "Too Many Requests"})
        if early is not None:
            return early
        if api.settings.hold_s > 0:
            await asyncio.sleep(api.settings.hold_s)
        key = request.query_params.get("api_key", "")
        if key not in api.settings.keys:
            state.stats.add(CallRecord(VENDOR, endpoint, 403, fault, site, error="auth"))
            return _tomcat(403, "Forbidden", "Invalid token", "The server understood the request but refuses to authorize it.")
        allowed = api.settings.keys[key]
        if site is not None and allowed is not None and site not in allowed:
            state.stats.add(CallRecord(VENDOR, endpoint, 403, fault, site, error="plant"))
            return JSONResponse({"message": f"Invalid site ID {site} for this api_key"}, status_code=403)
        if api.over_quota(key, site):
            state.stats.add(CallRecord(VENDOR, endpoint, 429, fault, site, error="rate_limit"))
            return JSONResponse({"message": "Too many requests: daily limit exceeded"}, status_code=429)
        profile = api.profile(site) if site is not None else None
        answer = work(api, profile)
        if isinstance(answer, Response):
            state.stats.add(CallRecord(VENDOR, endpoint, answer.status_code, fault, site, error="param"))
            return answer
        body, window, n = answer
        if fault == "malformed":
            _corrupt(body)
        state.stats.add(CallRecord(VENDOR, endpoint, 200, fault, site, window, None, n))
        return JSONResponse(body)
    finally:
        api.leave(client)


def _corrupt(body: dict) -> None:
    """Damage the first value of each meter (a non-numeric string): a malformed record."""
    for section in body.values():
        if isinstance(section, dict):
            for meter in section.get("meters") or []:
                for entry in meter.get("values") or []:
                    if "value" in entry:
                        entry["value"] = "N/A"
                        break


# -- the site-local grid -------------------------------------------------------------------------


def _parse(text: str | None) -> datetime | None:
    try:
        return datetime.strptime(text or "", DATE_FORMAT)
    except ValueError:
        return None


def _instants(naive: datetime, tz: str) -> list[int]:
    """Real UTC instants of a wall time: 0 (gap), 1, or 2 (repeated hour)."""
    z = zone(tz)
    t0 = int(naive.replace(tzinfo=z, fold=0).timestamp())
    t1 = int(naive.replace(tzinfo=z, fold=1).timestamp())
    if datetime.fromtimestamp(t0, z).replace(tzinfo=None) != naive:
        return []
    return sorted({t0, t1})


def _grid(start: datetime, end: datetime, step_min: int) -> list[datetime]:
    """Wall slots of each local day, from ``start`` to ``end`` inclusive."""
    out: list[datetime] = []
    t = datetime(start.year, start.month, start.day)
    while t <= end:
        if t >= start:
            out.append(t)
        t += timedelta(minutes=step_min)
    return out


_COUNTER_OF = {"Production": "solar_energy_kwh", "Consumption": "load_energy_kwh",
               "Purchased": "grid_import_energy_kwh", "FeedIn": "grid_export_energy_kwh"}


def _slot(api: SolarEdgeCloud, site: str, profile: HomeProfile, start: int, minutes: int) -> dict[str, float] | None:
    """Energy (Wh) per meter of the real interval ``[start, start + minutes)``; None if
    any of it lies before the site started or after now."""
    if start + minutes * 60 > api.clock():
        return None
    home = home_history(site, profile)
    out = dict.fromkeys((*_COUNTER_OF, "SelfConsumption"), 0.0)
    for q in range(start, start + minutes * 60, 900):
        e = home.quarter(q)
        if e is None:
            return None
        for meter, counter in _COUNTER_OF.items():
            out[meter] += e[counter] * 1000.0
        # PV used on site: what was produced and neither exported nor stored
        out["SelfConsumption"] += max(0.0, e["solar_energy_kwh"] - e["grid_export_energy_kwh"]
                                      - e["battery_charge_energy_kwh"]) * 1000.0
    return out


def _series(api: SolarEdgeCloud, site: str, profile: HomeProfile, start: datetime, end: datetime,
            minutes: int, meters: list[str], power: bool) -> tuple[dict[str, list[dict]], int]:
    """meter -> ``[{date, value?}]`` over the wall grid; and the number of values."""
    out: dict[str, list[dict]] = {m: [] for m in meters}
    n = 0
    for wall in _grid(start, end, minutes):
        stamp = wall.strftime(DATE_FORMAT)
        parts = [_slot(api, site, profile, t, minutes) for t in _instants(wall, profile.timezone)]
        if not parts or any(p is None for p in parts):
            for m in meters:
                out[m].append({"date": stamp})  # the DST gap, the future, before the start
            continue
        for m in meters:
            wh = sum(p[m] for p in parts if p is not None)  # the repeated hour: summed
            value = round(wh / len(parts) / (minutes / 60.0) if power else wh, 3)  # power: mean W
            if m == "Production" and value == 0 and api.settings.night_gaps and (wall.minute // minutes) % 2:
                out[m].append({"date": stamp})  # the real API alternates null and 0.0 at night
                continue
            out[m].append({"date": stamp, "value": value})
            n += 1
    return out, n


def _range(request: Request, api: SolarEdgeCloud, limit_days: int | None, names=("startTime", "endTime")) -> tuple[datetime, datetime] | Response:
    q = request.query_params
    for name in names:
        if name not in q:
            return _tomcat(400, "Bad Request", f"Required parameter &#39;{name}&#39; is not present",
                           "required parameter missing.")
    start, end = _parse(q[names[0]]), _parse(q[names[1]])
    if start is None or end is None or end < start:
        return JSONResponse({"message": f"Invalid {names[0]}/{names[1]}"}, status_code=400)
    if limit_days is not None and end - start > timedelta(days=limit_days):
        return JSONResponse({"message": "Requested time frame exceeds the allowed period of one month"}, status_code=403)
    return start, end


def _meters(request: Request) -> list[str]:
    asked = request.query_params.get("meters")
    if not asked:
        return list(ENERGY_METERS.values())
    return [ENERGY_METERS[m.strip().upper()] for m in asked.split(",") if m.strip().upper() in ENERGY_METERS]


def _details(site: str, profile: HomeProfile) -> dict:
    return {
        "id": int(site) if site.isdigit() else site, "name": profile.name or f"Site {site}", "accountId": 9001,
        "status": "Active", "peakPower": profile.pv_kwp,
        "installationDate": datetime.fromtimestamp(profile.start_ts, zone(profile.timezone)).strftime("%Y-%m-%d"),
        "type": "Optimizers & Inverters",
        "location": {"country": "Emulated", "timeZone": profile.timezone},
        "uris": {"DETAILS": f"/site/{site}/details", "OVERVIEW": f"/site/{site}/overview"},
    }


@router.get("/sites/list")
async def sites_list(request: Request) -> Response:
    def work(api: SolarEdgeCloud, _profile: Any):
        allowed = api.settings.keys.get(request.query_params.get("api_key", ""))
        ids = sorted(allowed) if allowed is not None else sorted(api.settings.sites)
        sites = [_details(s, api.profile(s)) for s in ids]
        return {"sites": {"count": len(sites), "site": sites}}, None, len(sites)
    return await _serve(request, "sites/list", None, work)


@router.get("/site/{site}/details")
async def details(site: str, request: Request) -> Response:
    return await _serve(request, "details", site, lambda api, p: ({"details": _details(site, p)}, None, 1))


def _details_endpoint(request: Request, site: str, name: str, power: bool):
    def work(api: SolarEdgeCloud, profile: HomeProfile):
        unit = request.query_params.get("timeUnit", "DAY" if not power else "QUARTER_OF_AN_HOUR")
        minutes = {"QUARTER_OF_AN_HOUR": 15, "HOUR": 60}.get(unit)
        if minutes is None or (power and minutes != 15):
            return JSONResponse({"message": f"timeUnit {unit} is not supported here"}, status_code=400)
        span = _range(request, api, api.settings.max_range_days)
        if isinstance(span, Response):
            return span
        meters = _meters(request)
        values, n = _series(api, site, profile, span[0], span[1], minutes, meters, power)
        body = {name: {"timeUnit": unit, "unit": "W" if power else "Wh",
                       "meters": [{"type": m, "values": v} for m, v in values.items()]}}
        return body, (request.query_params["startTime"], request.query_params["endTime"]), n
    return work


@router.get("/site/{site}/energyDetails")
async def energy_details(site: str, request: Request) -> Response:
    return await _serve(request, "energyDetails", site, _details_endpoint(request, site, "energyDetails", False))


@router.get("/site/{site}/powerDetails")
async def power_details(site: str, request: Request) -> Response:
    return await _serve(request, "powerDetails", site, _details_endpoint(request, site, "powerDetails", True))


@router.get("/site/{site}/power")
async def site_power(site: str, request: Request) -> Response:
    def work(api: SolarEdgeCloud, profile: HomeProfile):
        span = _range(request, api, api.settings.max_range_days)
        if isinstance(span, Response):
            return span
        values, n = _series(api, site, profile, span[0], span[1], 15, ["Production"], True)
        body = {"power": {"timeUnit": "QUARTER_OF_AN_HOUR", "unit": "W", "measuredBy": "INVERTER",
                          "values": [{"value": None, **v} for v in values["Production"]]}}
        return body, (request.query_params["startTime"], request.query_params["endTime"]), n
    return await _serve(request, "power", site, work)


@router.get("/site/{site}/energy")
async def site_energy(site: str, request: Request) -> Response:
    def work(api: SolarEdgeCloud, profile: HomeProfile):
        q = request.query_params
        for name in ("startDate", "endDate"):
            if name not in q:
                return _tomcat(400, "Bad Request", f"Required parameter &#39;{name}&#39; is not present",
                               "required parameter missing.")
        try:
            d0, d1 = date.fromisoformat(q["startDate"]), date.fromisoformat(q["endDate"])
        except ValueError:
            return JSONResponse({"message": "Invalid startDate/endDate"}, status_code=400)
        unit = q.get("timeUnit", "DAY")
        minutes = {"QUARTER_OF_AN_HOUR": 15, "HOUR": 60}.get(unit)
        if minutes is None:
            return JSONResponse({"message": f"timeUnit {unit} is not supported here"}, status_code=400)
        if (d1 - d0).days > api.settings.max_range_days:
            return JSONResponse({"message": "Requested time frame exceeds the allowed period of one month"},
                                status_code=403)
        start, end = datetime(d0.year, d0.month, d0.day), datetime(d1.year, d1.month, d1.day, 23, 59, 59)
        values, n = _series(api, site, profile, start, end, minutes, ["Production"], False)
        # /energy says "no value" with null (energyDetails leaves the key out)
        body = {"energy": {"timeUnit": unit, "unit": "Wh", "measuredBy": "INVERTER",
                           "values": [{"value": None, **v} for v in values["Production"]]}}
        return body, (q["startDate"], q["endDate"]), n
    return await _serve(request, "energy", site, work)


def _now_values(api: SolarEdgeCloud, site: str, profile: HomeProfile) -> tuple[int, dict, dict, dict] | None:
    now = api.clock()
    sample = int(now) - int(now) % 300  # the inverter reports every 5 minutes
    home = home_history(site, profile)
    live, total, today = home.live_at(sample - 1), home.counters_at(sample), home.today_at(sample)
    if live is None or total is None or today is None:
        return None
    return sample, live, total, today


@router.get("/site/{site}/overview")
async def overview(site: str, request: Request) -> Response:
    def work(api: SolarEdgeCloud, profile: HomeProfile):
        got = _now_values(api, site, profile)
        if got is None:
            return {"overview": {"lastUpdateTime": None, "currentPower": {"power": None}}}, None, 0
        sample, live, total, today = got
        body = {"overview": {
            "lastUpdateTime": datetime.fromtimestamp(sample, zone(profile.timezone)).strftime(DATE_FORMAT),
            "lifeTimeData": {"energy": round(total["solar_energy_kwh"] * 1000.0, 1)},
            "lastDayData": {"energy": round(today["solar_energy_kwh"] * 1000.0, 1)},
            "currentPower": {"power": round(live["solar_kw"] * 1000.0, 4)},
            "measuredBy": "INVERTER",
        }}
        return body, None, 1
    return await _serve(request, "overview", site, work)


@router.get("/site/{site}/currentPowerFlow")
async def current_power_flow(site: str, request: Request) -> Response:
    def work(api: SolarEdgeCloud, profile: HomeProfile):
        got = _now_values(api, site, profile)
        if got is None:
            return {"siteCurrentPowerFlow": {}}, None, 0
        _sample, live, _total, _today = got
        unit = api.settings.power_flow_unit
        scale = 1.0 if unit == "kW" else 1000.0
        digits = 2 if unit == "kW" else 1
        links = []
        if live["solar_kw"] > 0:
            links.append({"from": "PV", "to": "Load"})
        if live["grid_kw"] > 0:
            links.append({"from": "GRID", "to": "Load"})
        elif live["grid_kw"] < 0:
            links.append({"from": "LOAD", "to": "Grid"})
        if live["battery_kw"] > 0:
            links.append({"from": "STORAGE", "to": "Load"})
        elif live["battery_kw"] < 0:
            links.append({"from": "PV" if live["solar_kw"] > 0 else "LOAD", "to": "Storage"})
        status = "Discharging" if live["battery_kw"] > 0 else "Charging" if live["battery_kw"] < 0 else "Idle"
        body = {"siteCurrentPowerFlow": {
            "updateRefreshRate": 3, "unit": unit, "connections": links,
            "GRID": {"status": "Active", "currentPower": round(abs(live["grid_kw"]) * scale, digits)},
            "LOAD": {"status": "Active", "currentPower": round(live["load_kw"] * scale, digits)},
            "PV": {"status": "Active" if live["solar_kw"] > 0 else "Idle",
                   "currentPower": round(live["solar_kw"] * scale, digits)},
            "STORAGE": {"status": status, "currentPower": round(abs(live["battery_kw"]) * scale, digits),
                        "chargeLevel": int(round(live["soc_pct"])), "critical": False},
        }}
        return body, None, 1
    return await _serve(request, "currentPowerFlow", site, work)

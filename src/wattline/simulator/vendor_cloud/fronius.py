"""Emulated Fronius local Solar API v1 (a Datamanager / GEN24 web server), in the
captured shapes of ``vendor-fixtures/fronius/``.

=====================================================  ==========================================
``GET /solar_api/GetAPIVersion.cgi``                   ``{"APIVersion": 1, "BaseURL": "/solar_api/v1/"}``
``GET /solar_api/v1/GetPowerFlowRealtimeData.fcgi``    ``Head`` + ``Body.Data.Site`` (``P_PV``,
                                                       ``P_Load`` negative, ``P_Grid`` + import,
                                                       ``P_Akku`` + discharge, W; ``E_Day``,
                                                       ``E_Year``, ``E_Total`` Wh) and
                                                       ``Inverters."1"`` with ``SOC`` %
``GET /solar_api/v1/GetArchiveData.cgi``               ``Scope=System``, ``StartDate`` /
                                                       ``EndDate`` (``DD.MM.YYYY``, device-local,
                                                       at most 16 days), repeated ``Channel``:
                                                       the meter's ``EnergyReal_WAC_Plus_Absolute``
                                                       / ``_Minus_Absolute`` (cumulative Wh) every
                                                       5 minutes, keyed by seconds after ``Start``
any other ``/solar_api/...`` path                      the device's HTML 404 page
=====================================================  ==========================================

``Head.Timestamp`` carries the device's local offset. Errors as the device answers them:
``Status.Code`` 255 with a ``Reason`` for a bad parameter or a range that is too long.
Values from :mod:`.home_flow` (one home per site). One device per origin, as in real
life; the same API under ``/sites/{site_id}/solar_api/...`` emulates many devices on one
port. Shared faults (429, 5xx, slow, malformed: a value made ``"n/a"``) via :mod:`.common`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from wattline.domain.timeutil import local_midnight, zone

from .common import before_call, cloud
from .config import DEFAULT_START_TS, PlantProfile, default_profile
from .home_flow import home_flow
from .state import CallRecord

VENDOR = "fronius"
DEFAULT_SITE = "fronius-site-001"
CHANNELS = ("EnergyReal_WAC_Plus_Absolute", "EnergyReal_WAC_Minus_Absolute")
MAX_ARCHIVE_DAYS = 16
ARCHIVE_STEP_S = 300
NOT_FOUND_HTML = (
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
    '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n<html xmlns="http://www.w3.org/1999/xhtml" '
    'xml:lang="en" lang="en"><head>\n<meta http-equiv="content-type" content="text/html; charset=windows-1252">\n'
    "  <title>404 - Not Found</title>\n </head>\n <body>\n  <h1>404 - Not Found</h1>\n \n\n</body></html>"
)

router = APIRouter()


@dataclass
class FroniusSettings:
    """The sites (site id -> home); an id not listed gets a default home."""

    sites: dict[str, PlantProfile] = field(default_factory=lambda: {
        DEFAULT_SITE: PlantProfile(start_operating_ts=DEFAULT_START_TS, capacity_kw=8.0, latitude=-33.87,
                                   longitude=151.21, timezone="Australia/Sydney", name="Fronius home",
                                   initial_energy_kwh=2000.0),
    })

    def site(self, site_id: str) -> PlantProfile:
        return self.sites.get(site_id) or default_profile(site_id)


def install(app: FastAPI, settings: FroniusSettings) -> FroniusSettings:
    app.state.fronius = settings
    return settings


_lock = threading.Lock()


def settings_of(request: Request) -> FroniusSettings:
    with _lock:
        got = getattr(request.app.state, "fronius", None)
        return got if got is not None else install(request.app, FroniusSettings())


def _envelope(code: int, reason: str, data: dict | None, now: int, tz: str, args: dict) -> JSONResponse:
    body = {"Body": {"Data": data if data is not None else {}},
            "Head": {"RequestArguments": args, "Status": {"Code": code, "Reason": reason, "UserMessage": ""},
                     "Timestamp": datetime.fromtimestamp(now, zone(tz)).isoformat()}}
    return JSONResponse(body)


def _record(request: Request, endpoint: str, status: int, fault: str | None = None,
            plant_id: str | None = None, **kw) -> None:
    cloud(request).stats.add(CallRecord(VENDOR, endpoint, status, fault, plant_id, **kw))


async def _api_version(request: Request, site_id: str = DEFAULT_SITE) -> Response:
    early, fault = await before_call(request, VENDOR, "GetAPIVersion", "Too Many Requests")
    if early is not None:
        return early
    _record(request, "GetAPIVersion", 200, fault, site_id)
    return JSONResponse({"APIVersion": 1, "BaseURL": "/solar_api/v1/"})


async def _power_flow(request: Request, site_id: str = DEFAULT_SITE) -> Response:
    early, fault = await before_call(request, VENDOR, "GetPowerFlowRealtimeData", "Too Many Requests")
    if early is not None:
        return early
    profile = settings_of(request).site(site_id)
    now = int(cloud(request).now())
    f = home_flow(site_id, profile, now, cloud(request).config.history_source)
    site = {
        "BatteryStandby": False, "E_Day": round(f.solar_today_kwh * 1000.0, 1),
        "E_Total": round(f.solar_kwh * 1000.0, 1), "E_Year": None, "Meter_Location": "grid",
        "Mode": "bidirectional", "P_Akku": round(-f.battery_kw * 1000.0, 2), "P_Grid": round(f.grid_kw * 1000.0, 2),
        "P_Load": round(-f.load_kw * 1000.0, 2), "P_PV": round(f.solar_kw * 1000.0, 2) if f.solar_kw > 0 else None,
        "rel_Autonomy": None, "rel_SelfConsumption": None,
    }
    if fault == "malformed":
        site["P_Grid"] = "n/a"
    inverter = {"Battery_Mode": "normal", "DT": 1, "E_Day": site["E_Day"], "E_Total": site["E_Total"],
                "E_Year": None, "P": round(max(f.solar_kw - f.battery_kw, 0.0) * 1000.0, 2), "SOC": f.soc_pct}
    _record(request, "GetPowerFlowRealtimeData", 200, fault, site_id, records=1)
    return _envelope(0, "", {"Inverters": {"1": inverter}, "Site": site, "Version": "12"}, now, profile.timezone, {})


def _day(text: str) -> datetime | None:
    for fmt in ("%d.%m.%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


async def _archive(request: Request, site_id: str = DEFAULT_SITE) -> Response:
    early, fault = await before_call(request, VENDOR, "GetArchiveData", "Too Many Requests")
    if early is not None:
        return early
    profile = settings_of(request).site(site_id)
    tz = profile.timezone
    now = int(cloud(request).now())
    q = request.query_params
    channels = [c for c in q.getlist("Channel")]
    args = {"Scope": q.get("Scope", ""), "StartDate": q.get("StartDate", ""), "EndDate": q.get("EndDate", ""),
            "Channel": channels[-1] if channels else ""}  # the device echoes only the last Channel
    start, end = _day(q.get("StartDate", "")), _day(q.get("EndDate", ""))

    def refuse(reason: str) -> Response:
        _record(request, "GetArchiveData", 200, fault, site_id, error="param")
        return _envelope(255, reason, None, now, tz, args)

    if q.get("Scope") != "System" or start is None or end is None or end < start or not channels:
        return refuse("Invalid parameter")
    if (end - start).days >= MAX_ARCHIVE_DAYS:
        return refuse(f"Query range too long (at most {MAX_ARCHIVE_DAYS} days)")
    if set(channels) - set(CHANNELS):
        return refuse("Unknown channel")
    lo = local_midnight(start.date(), tz)
    hi = min(local_midnight((end + timedelta(days=1)).date(), tz), now + 1)
    first = -(-max(lo, profile.start_operating_ts) // ARCHIVE_STEP_S) * ARCHIVE_STEP_S
    columns: dict[str, dict[str, object]] = {c: {} for c in channels}
    for ts in range(first, hi, ARCHIVE_STEP_S):
        f = home_flow(site_id, profile, ts, cloud(request).config.history_source)
        for c in channels:
            kwh = f.grid_import_kwh if c == CHANNELS[0] else f.grid_export_kwh
            columns[c][str(ts - lo)] = int(round(kwh * 1000.0))
    if fault == "malformed" and channels:
        keys = list(columns[channels[0]])
        for i, c, mode in cloud(request).faults.corruptions(len(keys), channels):
            columns[c][keys[i]] = "n/a" if mode != "null" else None
    start_iso = datetime.fromtimestamp(lo, zone(tz)).isoformat()
    end_iso = datetime.fromtimestamp(local_midnight((end + timedelta(days=1)).date(), tz) - 1, zone(tz)).isoformat()
    data = {"meter:16220118": {"Data": {c: {"Unit": "Wh", "Values": v} for c, v in columns.items()},
                               "End": end_iso, "Start": start_iso}}
    args.update({"StartDate": start_iso, "EndDate": end_iso, "SeriesType": "Detail", "HumanReadable": "True"})
    n = len(columns[channels[0]])
    _record(request, "GetArchiveData", 200, fault, site_id, window=(q.get("StartDate", ""), q.get("EndDate", "")),
            records=n)
    return _envelope(0, "", data, now, tz, args)


async def _not_found(request: Request, rest: str = "", site_id: str = DEFAULT_SITE) -> Response:
    _record(request, "unknown", 404, None, site_id)
    return HTMLResponse(NOT_FOUND_HTML, status_code=404)


for prefix in ("", "/sites/{site_id}"):
    router.add_api_route(prefix + "/solar_api/GetAPIVersion.cgi", _api_version, methods=["GET"])
    router.add_api_route(prefix + "/solar_api/v1/GetPowerFlowRealtimeData.fcgi", _power_flow, methods=["GET"])
    router.add_api_route(prefix + "/solar_api/v1/GetArchiveData.cgi", _archive, methods=["GET"])
    router.add_api_route(prefix + "/solar_api/{rest:path}", _not_found, methods=["GET"])

"""Emulated Amber Electric API v1, under ``/v1`` (the real base is ``api.amber.com.au/v1``).

==========================================  ============================================
``GET /v1/sites``                           the key's sites
``GET /v1/sites/{id}/usage``                ``startDate``, ``endDate`` (NEM dates, both
                                            inclusive, <= 7 days apart, not before 90
                                            days ago): 30-minute general + feedIn usage
``GET /v1/sites/{id}/prices``               the same dates: Actual/Current/Forecast
                                            intervals, general + feedIn
``GET /v1/sites/{id}/prices/current``       the current interval, general + feedIn
==========================================  ============================================

Like the real API: ``Authorization: Bearer <api key>`` (401 ``{"message"}`` otherwise),
arrays ordered general > feedIn per interval, ``startTime`` one second after the
boundary, ``nemTime`` the interval's end in NEM time (+10:00), ``date`` its NEM date,
usage ``quality`` ``estimated`` for the last two days and ``billable`` before,
422 for a range longer than 7 days, and **50 requests per 5 minutes per key** (fixed
windows) with ``RateLimit-Limit/-Remaining/-Reset/-Policy`` on every answer and
429 + ``Retry-After`` beyond it. Injected faults (``CloudConfig.fault_rate``) apply.

Values come from the simulator: the site's PV (``history.plant_series``), a household
load curve, and a price model whose wholesale (spot) price falls below zero on sunny
middays and spikes on some evenings, so general prices can be negative and spike.
Everything is a pure function of the interval, so every call agrees with every other.
"""

from __future__ import annotations

import json
import math
import threading
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from .common import before_call, cloud
from .config import PlantProfile
from .history import plant_series
from .state import CallRecord, CloudState

VENDOR = "amber"
NEM = timezone(timedelta(hours=10))
DEMO_API_KEY = "psk_wattline_demo_amber_key"
DEMO_SITE = "01F5A5CRKMZ5BCX9P1S4V990AM"
INTERVAL_S = 1800
RECORD_FIELDS = ["kwh", "perKwh", "quality", "endTime", "channelType"]

router = APIRouter(prefix="/v1")


@dataclass(frozen=True)
class AmberSite:
    """One emulated site: its NMI, network, the PV on its roof and its household load."""

    nmi: str = "3052282872"
    network: str = "Jemena"
    pv: PlantProfile = field(default_factory=lambda: PlantProfile(
        start_operating_ts=1704067200, capacity_kw=6.6, latitude=-37.81, longitude=144.96,
        timezone="Australia/Melbourne", name="Amber demo roof"))
    mean_load_kw: float = 0.9
    seed: int = 11


@dataclass
class AmberSettings:
    """What the emulated Amber accepts and serves (tests change it before ``start()``)."""

    api_keys: list[str] = field(default_factory=lambda: [DEMO_API_KEY])
    sites: dict[str, AmberSite] = field(default_factory=lambda: {DEMO_SITE: AmberSite()})
    requests_per_window: int = 50
    window_s: int = 300
    max_range_days: int = 7
    usage_days_back: int = 90
    estimated_for_s: int = 2 * 86400  # usage younger than this is still "estimated"


class WindowLimiter:
    """Amber's fixed-window request limit per API key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}

    def take(self, key: str, now: float, limit: int, window_s: int) -> tuple[bool, int, int]:
        """(allowed, remaining after this call, seconds until the window resets)."""
        window = int(now // window_s)
        reset = max(1, int(math.ceil((window + 1) * window_s - now)))
        with self._lock:
            used = self._counts.get((key, window), 0)
            if used >= limit:
                return False, 0, reset
            self._counts[(key, window)] = used + 1
            if len(self._counts) > 10_000:
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
            return True, limit - used - 1, reset


class AmberCloud:
    """The emulated Amber's settings and limiter, on ``app.state.amber``."""

    def __init__(self, settings: AmberSettings | None = None) -> None:
        self.settings = settings or AmberSettings()
        self.limiter = WindowLimiter()


def install(app: FastAPI) -> None:
    app.state.amber = AmberCloud()
    app.include_router(router, tags=["amber"])


def amber_cloud(request: Request) -> AmberCloud:
    return request.app.state.amber


# -- the data ---------------------------------------------------------------------------


def _hash01(n: int, seed: int) -> float:
    return (zlib.crc32(f"{seed}:{n}".encode()) & 0xFFFFFFFF) / 2**32


def _nem_hour(ts: int) -> float:
    return ((ts + 36000) % 86400) / 3600.0


class RoofPV:
    """The site's simulated PV over a span, looked up by 15-minute sample time."""

    def __init__(self, site: AmberSite, site_id: str, start: int, end: int, source: str = "auto") -> None:
        self.capacity_kw = site.pv.capacity_kw
        s = plant_series(site_id, site.pv, start, end + 1, None, source)
        self._at = {int(t): (float(p), float(e)) for t, p, e in
                    zip(s.ts.tolist(), s.power_kw.tolist(), s.energy_total_kwh.tolist())}

    def power_kw(self, ts: int) -> float:
        return self._at.get(ts, (0.0, 0.0))[0]

    def energy_kwh(self, start: int, end: int) -> float:
        a, b = self._at.get(start), self._at.get(end)
        return b[1] - a[1] if a is not None and b is not None else 0.0


def interval_energy(site: AmberSite, pv: RoofPV, start: int) -> tuple[float, float]:
    """(import kWh, export kWh) of the 30 minutes from ``start``: household load against
    the roof's PV (simulated), netted over the interval as a meter does."""
    pv_kwh = pv.energy_kwh(start, start + INTERVAL_S)
    h = _nem_hour(start)
    shape = 0.5 + 0.6 * math.exp(-((h - 7.5) / 1.5) ** 2) + 1.2 * math.exp(-((h - 19.0) / 2.0) ** 2)
    load_kwh = site.mean_load_kw * shape * (0.8 + 0.4 * _hash01(start // INTERVAL_S, site.seed)) * 0.5
    net = load_kwh - pv_kwh
    return round(max(net, 0.0), 3), round(max(-net, 0.0), 3)


def interval_price(site: AmberSite, pv: RoofPV, start: int) -> tuple[float, float, float, str]:
    """(general c/kWh, feed-in c/kWh, spot c/kWh, spikeStatus) of the interval from ``start``.

    Spot: an evening peak, pushed below zero by sunshine at midday (the simulated PV's
    output as a share of its capacity) and, on some evenings, a spike.
    """
    sun = pv.power_kw(start) / pv.capacity_kw
    h = _nem_hour(start)
    u = _hash01(start // INTERVAL_S, site.seed ^ 0x5A5A)
    spot = 7.0 + 9.0 * math.exp(-((h - 18.5) / 2.0) ** 2) - 22.0 * sun + 4.0 * (u - 0.5)
    spike = "none"
    day_u = _hash01(start // 86400, site.seed ^ 0x77)
    if day_u < 0.15 and 17.0 <= h < 20.0:  # about one evening in seven spikes
        spike = "spike" if day_u < 0.08 else "potential"
        spot = 300.0 + 1200.0 * day_u / 0.15 if spike == "spike" else 90.0 + 40.0 * u
    network = 17.0 if 15.0 <= h < 21.0 else 8.5  # peak / off-peak network tariff (c/kWh)
    general = round(spot * 1.1 + network, 5)
    feed_in = round(-(spot - 0.3), 5)  # negative: Amber pays this much per exported kWh
    return general, feed_in, round(spot, 5), spike


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _common(start: int) -> dict:
    end = start + INTERVAL_S
    return {
        "duration": 30,
        "date": datetime.fromtimestamp(end - 1, NEM).strftime("%Y-%m-%d"),
        "startTime": _iso(start + 1),  # Amber: one second after the boundary
        "endTime": _iso(end),
        "nemTime": datetime.fromtimestamp(end, NEM).isoformat(),
    }


def _descriptor(general: float) -> str:
    for limit, name in ((0.0, "extremelyLow"), (10.0, "veryLow"), (20.0, "low"), (30.0, "neutral"),
                        (60.0, "high")):
        if general < limit:
            return name
    return "spike"


def price_items(site: AmberSite, pv: RoofPV, start: int, now: float) -> list[dict]:
    """The general and feedIn price intervals starting at ``start`` (Actual, Current or Forecast)."""
    general, feed_in, spot, spike = interval_price(site, pv, start)
    current = start <= now < start + INTERVAL_S
    kind = "CurrentInterval" if current else ("ActualInterval" if start + INTERVAL_S <= now else "ForecastInterval")
    h = _nem_hour(start)
    period = "peak" if 15.0 <= h < 21.0 else "offPeak"
    out = []
    for channel, per_kwh in (("general", general), ("feedIn", feed_in)):
        item = {"type": kind, **_common(start), "perKwh": per_kwh, "renewables": round(20.0 + 60.0 * max(0.0, -spot / 30.0), 3),
                "spotPerKwh": spot, "channelType": channel, "spikeStatus": spike,
                "tariffInformation": {"period": period, "season": "default"},
                "descriptor": _descriptor(general if channel == "general" else -feed_in)}
        if kind != "ActualInterval":
            item["estimate"] = True
        out.append(item)
    return out


def usage_items(settings: AmberSettings, site: AmberSite, pv: RoofPV, start: int, now: float) -> list[dict]:
    """General and feedIn usage of the interval from ``start`` (general first)."""
    imported, exported = interval_energy(site, pv, start)
    general, feed_in, spot, spike = interval_price(site, pv, start)
    quality = "estimated" if now - (start + INTERVAL_S) < settings.estimated_for_s else "billable"
    out = []
    for channel, ident, kwh, per_kwh in (("general", "E1", imported, general), ("feedIn", "B1", -exported, feed_in)):
        out.append({"type": "Usage", **_common(start), "quality": quality, "kwh": kwh, "perKwh": per_kwh,
                    "channelType": channel, "channelIdentifier": ident, "cost": round(kwh * per_kwh, 4),
                    "renewables": 40.0, "spotPerKwh": spot, "spikeStatus": spike,
                    "tariffInformation": {"period": "peak" if 15.0 <= _nem_hour(start) < 21.0 else "offPeak",
                                          "season": "default"},
                    "descriptor": _descriptor(general)})
    return out


# -- the endpoints ----------------------------------------------------------------------


def _message(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status, headers=headers)


def _gate(request: Request, state: CloudState, endpoint: str, site_id: str | None = None):
    """Auth, then the key's rate limit. Returns (error response or None, headers, key)."""
    amber = amber_cloud(request)
    s = amber.settings
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or key not in s.api_keys:
        state.stats.add(CallRecord(VENDOR, endpoint, 401, plant_id=site_id, error="auth"))
        return _message(401, "Unauthorized"), {}, None
    ok, remaining, reset = amber.limiter.take(key, state.now(), s.requests_per_window, s.window_s)
    headers = {"RateLimit-Limit": str(s.requests_per_window), "RateLimit-Remaining": str(remaining),
               "RateLimit-Reset": str(reset), "RateLimit-Policy": f"{s.requests_per_window};w={s.window_s}"}
    if not ok:
        state.stats.add(CallRecord(VENDOR, endpoint, 429, plant_id=site_id, error="rate_limit"))
        return _message(429, "Too Many Requests", {**headers, "Retry-After": str(reset)}), headers, key
    return None, headers, key


def _site(request: Request, state: CloudState, endpoint: str, site_id: str, headers: dict):
    site = amber_cloud(request).settings.sites.get(site_id)
    if site is None:
        state.stats.add(CallRecord(VENDOR, endpoint, 404, plant_id=site_id, error="plant"))
        return None, _message(404, "Site not found", headers)
    return site, None


def _parse_date(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text or "")
    except ValueError:
        return None


def _range(request: Request, settings: AmberSettings, now: float, usage: bool) -> tuple[int, int] | str:
    """[first interval start, end) of the requested NEM dates, or the 422 message."""
    a, b = _parse_date(request.query_params.get("startDate")), _parse_date(request.query_params.get("endDate"))
    if a is None or b is None:
        return "startDate and endDate must be dates (YYYY-MM-DD)"
    if b < a:
        return "endDate must not be before startDate"
    if (b - a).days >= settings.max_range_days:
        return f"The range between startDate and endDate must not exceed {settings.max_range_days} days"
    today = datetime.fromtimestamp(now, NEM).date()
    if usage and a < today - timedelta(days=settings.usage_days_back):
        return f"Usage is only available for the last {settings.usage_days_back} days"
    start = int(datetime(a.year, a.month, a.day, tzinfo=NEM).timestamp())
    end = int(datetime(b.year, b.month, b.day, tzinfo=NEM).timestamp()) + 86400
    return start, end


def _corrupt(items: list[dict], state: CloudState) -> None:
    for i, fld, mode in state.faults.corruptions(len(items), RECORD_FIELDS):
        if mode == "missing":
            items[i].pop(fld, None)
        elif mode == "non_numeric":
            items[i][fld] = "N/A"
        else:
            items[i][fld] = None


def _answer(items: list[dict], headers: dict) -> Response:
    return Response(json.dumps(items, separators=(",", ":")), media_type="application/json", headers=headers)


@router.get("/sites")
async def sites(request: Request) -> Response:
    state = cloud(request)
    early, _ = await before_call(request, VENDOR, "sites", {"message": "Too Many Requests"})
    if early is not None:
        return early
    refused, headers, _key = _gate(request, state, "sites")
    if refused is not None:
        return refused
    out = [{"id": sid, "nmi": s.nmi, "channels": [{"identifier": "E1", "type": "general", "tariff": "A100"},
                                                  {"identifier": "B1", "type": "feedIn", "tariff": "A100"}],
            "network": s.network, "status": "active", "activeFrom": "2024-01-01", "intervalLength": 30}
           for sid, s in amber_cloud(request).settings.sites.items()]
    state.stats.add(CallRecord(VENDOR, "sites", 200, records=len(out)))
    return _answer(out, headers)


async def _intervals(request: Request, site_id: str, endpoint: str) -> Response:
    state = cloud(request)
    early, fault = await before_call(request, VENDOR, endpoint, {"message": "Too Many Requests"})
    if early is not None:
        return early
    refused, headers, _key = _gate(request, state, endpoint, site_id)
    if refused is not None:
        return refused
    site, missing = _site(request, state, endpoint, site_id, headers)
    if missing is not None:
        return missing
    settings = amber_cloud(request).settings
    now = state.now()
    window = (request.query_params.get("startDate", ""), request.query_params.get("endDate", ""))
    span = _range(request, settings, now, usage=endpoint == "usage")
    if isinstance(span, str):
        state.stats.add(CallRecord(VENDOR, endpoint, 422, fault, site_id, window, error="param"))
        return _message(422, span, headers)
    items: list[dict] = []
    pv = RoofPV(site, site_id, span[0], span[1], state.config.history_source)
    for start in range(span[0], span[1], INTERVAL_S):
        if endpoint == "usage":
            if start + INTERVAL_S > now:
                break  # usage exists only for finished intervals
            items.extend(usage_items(settings, site, pv, start, now))
        else:
            items.extend(price_items(site, pv, start, now))
    if fault == "malformed":
        _corrupt(items, state)
    state.stats.add(CallRecord(VENDOR, endpoint, 200, fault, site_id, window, records=len(items)))
    return _answer(items, headers)


@router.get("/sites/{site_id}/usage")
async def usage(request: Request, site_id: str) -> Response:
    return await _intervals(request, site_id, "usage")


@router.get("/sites/{site_id}/prices")
async def prices(request: Request, site_id: str) -> Response:
    return await _intervals(request, site_id, "prices")


@router.get("/sites/{site_id}/prices/current")
async def prices_current(request: Request, site_id: str) -> Response:
    state = cloud(request)
    early, fault = await before_call(request, VENDOR, "prices_current", {"message": "Too Many Requests"})
    if early is not None:
        return early
    refused, headers, _key = _gate(request, state, "prices_current", site_id)
    if refused is not None:
        return refused
    site, missing = _site(request, state, "prices_current", site_id, headers)
    if missing is not None:
        return missing
    now = state.now()
    start = int(now // INTERVAL_S) * INTERVAL_S
    items = price_items(site, RoofPV(site, site_id, start, start + INTERVAL_S, state.config.history_source),
                        start, now)
    if fault == "malformed":
        _corrupt(items, state)
    state.stats.add(CallRecord(VENDOR, "prices_current", 200, fault, site_id, records=len(items)))
    return _answer(items, headers)


__all__ = ["AmberCloud", "AmberSettings", "AmberSite", "DEMO_API_KEY", "DEMO_SITE", "install", "router",
           "RoofPV", "interval_energy", "interval_price"]

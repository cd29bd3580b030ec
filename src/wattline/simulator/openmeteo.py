"""Optional real weather from Open-Meteo for live mode, never required.

:class:`OpenMeteoWeather` has the same ``at(t)`` interface as
:class:`~wattline.simulator.weather.OfflineWeather`. For each site it asks the
Open-Meteo forecast API (``/v1/forecast``, hourly ``temperature_2m``,
``cloud_cover``, ``wind_speed_10m``, a couple of past and future days) and uses
those values where they cover the requested times; everywhere else, and whenever
the API cannot be reached, the offline model answers. Sub-hourly cloud-edge
flicker always comes from the offline model.

* answers are cached per place for one hour (shared by all instances),
* requests time out after a few seconds,
* after a failure nobody calls the API for ``retry_after_s`` (10 minutes): an
  offline machine pays one timeout, not one per site per step.

Replays stay on the offline model: history must be reproducible.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import httpx
import numpy as np

from wattline.simulator.sites import SiteSpec
from wattline.simulator.weather import KnotInterpolator, OfflineWeather, Weather

FORECAST_URL = "https://api.open-meteo.com/v1/forecast"
CACHE_TTL_S = 3600.0
RETRY_AFTER_S = 600.0
TIMEOUT_S = 3.0


@dataclass
class HourlyTable:
    """Open-Meteo hourly values for one place."""

    time_s: np.ndarray  # epoch seconds
    cloud_fraction: np.ndarray
    temp_air_c: np.ndarray
    wind_speed_ms: np.ndarray
    fetched_at: float


class _Cache:
    def __init__(self):
        self.tables: dict[tuple[float, float], HourlyTable] = {}
        self.down_until = 0.0
        self.lock = threading.Lock()


_shared_cache = _Cache()


def parse_forecast(payload: dict, fetched_at: float) -> HourlyTable:
    """Hourly table from an Open-Meteo ``timeformat=unixtime`` JSON answer."""
    hourly = payload["hourly"]
    t = np.asarray(hourly["time"], dtype=np.float64)
    cols = [np.asarray(hourly[k], dtype=np.float64) for k in ("cloud_cover", "temperature_2m", "wind_speed_10m")]
    ok = np.isfinite(t) & np.all([np.isfinite(c) for c in cols], axis=0)  # nulls become NaN
    if ok.sum() < 2 or np.any(np.diff(t[ok]) <= 0):
        raise ValueError("Open-Meteo answer has no usable hourly series")
    cloud, temp, wind = (c[ok] for c in cols)
    return HourlyTable(t[ok], np.clip(cloud / 100.0, 0.0, 1.0), temp, np.maximum(wind, 0.0), fetched_at)


class OpenMeteoWeather:
    """Open-Meteo where it has data, :class:`OfflineWeather` everywhere else.

    Parameters
    ----------
    sites : sequence of SiteSpec
    client : httpx.Client, optional
        Injected for tests (``httpx.MockTransport``); default: a client with ``timeout_s``.
    timeout_s, cache_ttl_s, retry_after_s : float
    clock : callable
        Monotonic seconds (injectable for tests).
    cache : optional
        Answer cache; default shared by all instances in the process.
    """

    def __init__(self, sites: Sequence[SiteSpec], *, client: httpx.Client | None = None,
                 timeout_s: float = TIMEOUT_S, cache_ttl_s: float = CACHE_TTL_S,
                 retry_after_s: float = RETRY_AFTER_S, past_days: int = 2, forecast_days: int = 2,
                 clock: Callable[[], float] = time.monotonic, cache: _Cache | None = None):
        self.sites = tuple(sites)
        self.offline = OfflineWeather(self.sites)
        self._client = client
        self._timeout_s = timeout_s
        self._ttl = cache_ttl_s
        self._retry_after = retry_after_s
        self._past_days, self._forecast_days = past_days, forecast_days
        self._clock = clock
        self._cache = cache if cache is not None else _shared_cache
        self.last_error: str | None = None

    @staticmethod
    def new_cache() -> _Cache:
        return _Cache()

    def _fetch(self, lat: float, lon: float) -> HourlyTable:
        params = {
            "latitude": lat, "longitude": lon,
            "hourly": "temperature_2m,cloud_cover,wind_speed_10m",
            "past_days": self._past_days, "forecast_days": self._forecast_days,
            "wind_speed_unit": "ms", "timeformat": "unixtime", "timezone": "GMT",
        }
        client = self._client or httpx.Client(timeout=self._timeout_s)
        try:
            response = client.get(FORECAST_URL, params=params, timeout=self._timeout_s)
            response.raise_for_status()
            return parse_forecast(response.json(), self._clock())
        finally:
            if self._client is None:
                client.close()

    def table(self, site: SiteSpec) -> HourlyTable | None:
        """The cached or freshly fetched table for a site, or None (use offline)."""
        key = (round(site.latitude, 2), round(site.longitude, 2))
        now = self._clock()
        c = self._cache
        with c.lock:
            cached = c.tables.get(key)
            if cached is not None and now - cached.fetched_at < self._ttl:
                return cached
            if now < c.down_until:
                return cached  # a stale answer beats none while the API is down
        try:
            fresh = self._fetch(*key)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            with c.lock:
                c.down_until = self._clock() + self._retry_after
            return cached
        with c.lock:
            c.tables[key] = fresh
        return fresh

    def at(self, t: np.ndarray, hourly: KnotInterpolator | None = None) -> Weather:
        """Weather (S, K) at epoch seconds ``t``: Open-Meteo where covered, offline elsewhere."""
        t = np.asarray(t, dtype=np.float64)
        w = self.offline.at(t, hourly)
        if t.size == 0:
            return w
        for i, site in enumerate(self.sites):
            table = self.table(site)
            if table is None:
                continue
            covered = (t >= table.time_s[0]) & (t <= table.time_s[-1])
            if not covered.any():
                continue
            tc = t[covered]
            w.cloud_fraction[i, covered] = np.interp(tc, table.time_s, table.cloud_fraction)
            w.temp_air_c[i, covered] = np.interp(tc, table.time_s, table.temp_air_c)
            w.wind_speed_ms[i, covered] = np.interp(tc, table.time_s, table.wind_speed_ms)
        return w

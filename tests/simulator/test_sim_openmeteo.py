"""Optional Open-Meteo weather: used when reachable, cached, offline fallback. No network."""

import httpx
import numpy as np

from wattline.simulator import LiveSimulator, OfflineWeather, default_sites
from wattline.simulator.openmeteo import OpenMeteoWeather

T0 = 1718409600


def _answer(request: httpx.Request) -> httpx.Response:
    hours = T0 - 2 * 86400 + 3600 * np.arange(96)
    return httpx.Response(200, json={
        "latitude": float(request.url.params["latitude"]),
        "hourly": {
            "time": hours.tolist(),
            "temperature_2m": [31.5] * 96,
            "cloud_cover": [25.0] * 96,
            "wind_speed_10m": [4.0] * 95 + [None],
        },
    })


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_uses_open_meteo_where_it_has_data_and_caches_an_hour():
    sites = default_sites(3, seed=1)
    calls = []

    def handler(request):
        calls.append(request)
        assert request.url.params["hourly"] == "temperature_2m,cloud_cover,wind_speed_10m"
        assert request.url.params["timeformat"] == "unixtime"
        return _answer(request)

    clock = Clock()
    model = OpenMeteoWeather(sites, client=httpx.Client(transport=httpx.MockTransport(handler)),
                             clock=clock, cache=OpenMeteoWeather.new_cache())
    t = np.array([T0 - 3600.0, T0 + 1800.0, T0 + 30 * 86400.0])  # last one beyond the forecast
    w = model.at(t)
    offline = OfflineWeather(sites).at(t)
    assert len(calls) == 3
    assert np.all(w.temp_air_c[:, :2] == 31.5) and np.all(w.cloud_fraction[:, :2] == 0.25)
    assert np.all(w.wind_speed_ms[:, :2] == 4.0)
    assert np.array_equal(w.temp_air_c[:, 2], offline.temp_air_c[:, 2])
    model.at(t)
    assert len(calls) == 3  # cached
    clock.now += 3601
    model.at(t)
    assert len(calls) == 6  # expired after an hour


def test_falls_back_to_offline_and_backs_off_when_unreachable():
    sites = default_sites(4, seed=2)
    calls = []

    def down(request):
        calls.append(request)
        raise httpx.ConnectTimeout("no route to host", request=request)

    clock = Clock()
    model = OpenMeteoWeather(sites, client=httpx.Client(transport=httpx.MockTransport(down)),
                             clock=clock, cache=OpenMeteoWeather.new_cache())
    t = T0 + np.arange(0, 3600, 300) + 150.0
    w = model.at(t)
    offline = OfflineWeather(sites).at(t)
    for field in ("cloud_fraction", "temp_air_c", "wind_speed_ms"):
        assert np.array_equal(getattr(w, field), getattr(offline, field))
    assert len(calls) == 1  # one timeout, then no more calls for any site
    assert "ConnectTimeout" in model.last_error
    model.at(t)
    assert len(calls) == 1
    clock.now += 601
    model.at(t)
    assert len(calls) == 2


def test_bad_payload_falls_back_and_live_mode_accepts_the_source():
    sites = default_sites(2, seed=3)

    def garbage(request):
        return httpx.Response(200, json={"error": True, "reason": "nope"})

    def factory(s):
        return OpenMeteoWeather(s, client=httpx.Client(transport=httpx.MockTransport(garbage)),
                                cache=OpenMeteoWeather.new_cache())

    live = LiveSimulator(sites, 300, weather_factory=factory)
    offline = LiveSimulator(sites, 300)
    a, b = live.step(T0 + 300), offline.step(T0 + 300)
    assert a.errors == {} and [x.values for x in a] == [y.values for y in b]

"""Offline weather: window-independent, bounded, persistent, seasonal."""

import numpy as np

from wattline.simulator import OfflineWeather, default_sites
from wattline.simulator.noise import normal, stream_keys, uniform

T0 = 1704067200  # 2024-01-01T00:00Z


def test_overlapping_windows_give_identical_weather():
    model = OfflineWeather(default_sites(6, seed=9))
    a_t = T0 + np.arange(0, 10 * 86400, 300) + 150.0
    b_t = T0 + 3 * 86400 + 7 + np.arange(0, 20 * 86400, 300) + 143.0  # same instants, other window
    a, b = model.at(a_t), model.at(b_t)
    common, ia, ib = np.intersect1d(a_t, b_t, return_indices=True)
    assert len(common) > 1000
    for field in ("cloud_fraction", "temp_air_c", "wind_speed_ms", "clearness_jitter"):
        assert np.array_equal(getattr(a, field)[:, ia], getattr(b, field)[:, ib]), field
    # a single instant on its own agrees too
    one = model.at(a_t[500:501])
    assert np.array_equal(one.temp_air_c[:, 0], a.temp_air_c[:, 500])


def test_weather_is_bounded_and_varies():
    w = OfflineWeather(default_sites(25, seed=1)).at(T0 + np.arange(0, 366 * 86400, 3600) + 1800.0)
    assert np.all((w.cloud_fraction > 0) & (w.cloud_fraction < 1))
    assert np.all(w.wind_speed_ms > 0)
    assert np.all((w.clearness_jitter >= -1) & (w.clearness_jitter <= 1))
    assert -40 < w.temp_air_c.min() and w.temp_air_c.max() < 55
    # clear and overcast spells both happen everywhere
    assert np.all((w.cloud_fraction < 0.2).mean(axis=1) > 0.02)
    assert np.all((w.cloud_fraction > 0.8).mean(axis=1) > 0.01)


def test_cloud_cover_persists_hour_to_hour_and_day_to_day():
    w = OfflineWeather(default_sites(10, seed=4)).at(T0 + np.arange(0, 366 * 86400, 3600) + 1800.0)
    for c in w.cloud_fraction:
        lag1 = np.corrcoef(c[:-1], c[1:])[0, 1]
        daily = c[: 366 * 24].reshape(366, 24).mean(axis=1)
        day_lag1 = np.corrcoef(daily[:-1], daily[1:])[0, 1]
        assert lag1 > 0.85
        assert 0.2 < day_lag1 < 0.95


def test_seasons_are_opposite_in_the_two_hemispheres():
    sites = [s for s in default_sites(5) if s.name.startswith(("Sydney", "Oslo"))]
    t = T0 + np.arange(0, 366 * 86400, 3600) + 1800.0
    temp = OfflineWeather(sites).at(t).temp_air_c
    month = ((t - T0) // (86400 * 30.5)).astype(int)
    jan, jul = month == 0, month == 6
    sydney, oslo = temp[0], temp[1]
    assert sydney[jan].mean() > sydney[jul].mean() + 5
    assert oslo[jul].mean() > oslo[jan].mean() + 10


def test_noise_is_a_pure_function_of_its_key():
    keys = stream_keys([1, 2, 3], stream=5)
    idx = np.arange(100_000)
    u = uniform(keys, idx)
    assert np.array_equal(u, uniform(keys, idx))
    assert np.array_equal(u[:, 500:600], uniform(keys, idx[500:600]))
    assert np.all((u > 0) & (u < 1))
    assert abs(u.mean() - 0.5) < 0.005
    n = normal(keys, idx)
    assert abs(n.std() - 1) < 0.01
    # streams and seeds are independent
    assert abs(np.corrcoef(u[0], u[1])[0, 1]) < 0.02
    assert abs(np.corrcoef(u[0], uniform(stream_keys([1], 6), idx)[0])[0, 1]) < 0.02

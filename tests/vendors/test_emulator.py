"""The emulated clouds themselves: history invariants, own rate limit, CLI, registry."""

from __future__ import annotations

import time
from datetime import date

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from wattline.cli_vendors import vendors_app
from wattline.domain.timeutil import day_bounds
from wattline.simulator.vendor_cloud import CloudConfig, PlantProfile, default_profile, plant_series
from wattline.simulator.vendor_cloud.history import simulator_source
from wattline.sources.vendors import (
    RateLimiter,
    UnknownVendorError,
    create_adapter,
    get_adapter_class,
    vendor_types,
)
from wattline.sources.vendors.solarman import SolarmanAdapter
from wattline.sources.vendors.sungrow import SungrowAdapter

SYDNEY = PlantProfile(start_operating_ts=1704067200, capacity_kw=10.0, latitude=-33.87, longitude=151.21,
                      timezone="Australia/Sydney", seed=42)
SOURCES = ["clear_sky"] + (["simulator"] if simulator_source() is not None else [])


@pytest.mark.parametrize("source", SOURCES)
def test_history_counter_is_window_independent_and_monotonic(source):
    now = 1730419200
    full = plant_series("p", SYDNEY, SYDNEY.start_operating_ts, now, now, source)
    assert len(full) == (now - SYDNEY.start_operating_ts) // 900 + 1 - 1  # [start, now) on the grid
    assert (np.diff(full.ts) == 900).all()
    assert (np.diff(full.energy_total_kwh) >= 0).all()
    assert 0 <= full.power_kw.min() and full.power_kw.max() <= SYDNEY.capacity_kw * 1.2
    assert full.energy_total_kwh[0] == 0.0
    # any window (and any split of it) gives the very same numbers
    a = 1712000000 // 900 * 900 + 7
    part = plant_series("p", SYDNEY, a, a + 3 * 86400, now, source)
    i = int(np.searchsorted(full.ts, part.ts[0]))
    assert part.ts[0] == a - 7 + 900
    for column in ("power_kw", "energy_total_kwh", "energy_today_kwh"):
        assert np.array_equal(getattr(part, column), getattr(full, column)[i : i + len(part)])


@pytest.mark.parametrize("source", SOURCES)
def test_energy_today_resets_at_local_midnight_on_dst_days(source):
    now = 1730419200
    for day, samples in [(date(2024, 4, 7), 100), (date(2024, 10, 6), 92), (date(2024, 5, 1), 96)]:
        lo, hi = day_bounds(day, "Australia/Sydney")
        s = plant_series("p", SYDNEY, lo, hi + 900, now, source)
        assert len(s) == samples + 1
        assert s.energy_today_kwh[0] == 0.0 and s.energy_today_kwh[-1] == 0.0  # both midnights
        day_energy = s.energy_total_kwh[-1] - s.energy_total_kwh[0]
        assert s.energy_today_kwh[-2] == pytest.approx(day_energy, abs=1e-9)
        assert day_energy > 1.0  # a 10 kW plant makes something every day


def test_history_stops_at_now_and_before_start():
    s = plant_series("p", SYDNEY, 0, 2_000_000_000, now_ts=SYDNEY.start_operating_ts + 3600, source="clear_sky")
    assert s.ts[0] == SYDNEY.start_operating_ts and s.ts[-1] == SYDNEY.start_operating_ts + 3600
    assert len(plant_series("p", SYDNEY, 0, SYDNEY.start_operating_ts, source="clear_sky")) == 0


def test_default_profile_is_deterministic():
    a, b = default_profile("64786338"), default_profile("64786338")
    assert a == b and a.start_operating_ts == 1704067200 and a.timezone == "UTC"
    assert 50.0 <= a.capacity_kw <= 1000.0 and default_profile("1").seed != a.seed


def test_config_rejects_bad_values():
    with pytest.raises(ValueError):
        CloudConfig(fault_rate=1.5)
    with pytest.raises(ValueError):
        CloudConfig(fault_kinds=("boom",))
    with pytest.raises(ValueError):
        CloudConfig(history_source="magic")


def test_cloud_enforces_its_own_per_minute_limit(kit, start_cloud):
    clock = kit.FakeClock(kit.NOW)
    running = start_cloud(rate_limit_per_minute=3, clock=clock)
    ad = SungrowAdapter(running.base_url, kit.credentials("sungrow"),
                        limiter=RateLimiter.unlimited(clock=clock, sleep=clock.sleep), sleep=clock.sleep)
    start = kit.START

    async def main():
        async with ad:
            return await ad.fetch_history(kit.SUNGROW_PLANT, start, start + 35 * kit.DAY, kit.SUNGROW_TZ)

    result = kit.run(main())
    assert len(result.records) == 35 * 96
    limited = [c for c in result.calls if c.status == 429]
    assert len(limited) == 1 and running.state.stats.errors()["rate_limit"] == 1
    assert 60.0 in clock.sleeps  # Retry-After until the next minute


def test_stats_endpoint_and_health(kit, start_cloud):
    running = start_cloud(scripted_faults=["503"])
    with httpx.Client(base_url=running.base_url) as http:
        assert http.post("/v1/userService/login", json={}).status_code == 503
        assert http.get("/_emulator/health").json() == {"status": "ok", "vendors": ["solarman", "sungrow"],
                                                        "latencyMs": 0.0, "benchMode": False}
        stats = http.get("/_emulator/stats").json()
    assert stats["faults"] == {"503": 1} and stats["calls"] == {"sungrow login 503": 1}


def test_sungrow_hourly_interval_and_dash_slots(kit, cloud):
    with httpx.Client(base_url=cloud.base_url) as http:
        login = http.post("/v1/userService/login", json={
            "appkey": kit.credentials("sungrow")["appkey"], "user_account": "demo@wattline.local",
            "user_password": "wattline-demo",
        }).json()["result_data"]
        body = {
            "appkey": kit.credentials("sungrow")["appkey"], "token": login["token"], "user_id": login["user_id"],
            "ps_key": "1129147_11_0_0", "points": "p83033,p83022", "minute_interval": "60",
            "start_time_stamp": "20241101100000", "end_time_stamp": "20241101135900",
        }
        data = http.post("/v1/commonService/queryMutiPointDataList", json=body).json()
    series = data["result_data"]["1129147_11_0_0"]
    assert set(series) == {"p83033", "p83022"}
    # NOW is 2024-11-01T00:00Z = 11:00 in Sydney: 10:00 and 11:00 have values, later slots "--"
    assert list(series["p83033"]) == ["20241101100000", "20241101110000", "20241101120000", "20241101130000"]
    assert [v == "--" for v in series["p83022"].values()] == [False, False, True, True]
    assert login["token"].startswith(f"{login['user_id']}_")


def test_cli_serve_passes_options(monkeypatch):
    captured = {}
    monkeypatch.setattr("wattline.simulator.vendor_cloud.server.serve", lambda **kw: captured.update(kw))
    result = CliRunner().invoke(vendors_app, ["serve", "--port", "9123", "--fault-rate", "0.25", "--latency-ms", "5"])
    assert result.exit_code == 0, result.output
    assert captured == {"host": "127.0.0.1", "port": 9123, "fault_rate": 0.25, "latency_ms": 5.0, "seed": 0}
    bad = CliRunner().invoke(vendors_app, ["serve", "--fault-rate", "2"])
    assert bad.exit_code != 0


def test_registry_knows_both_vendors():
    assert {"solarman", "sungrow"} <= set(vendor_types())  # more vendors have their own tests
    assert get_adapter_class("Solarman") is SolarmanAdapter
    assert get_adapter_class(" sungrow ") is SungrowAdapter
    with pytest.raises(UnknownVendorError, match="known types: .*solarman, sungrow"):
        get_adapter_class("no-such-vendor")
    ad = create_adapter("sungrow", None, {"appkey": "k", "username": "u", "password": "hunter2"})
    assert ad.base_url == "https://augateway.isolarcloud.com"
    assert "hunter2" not in repr(ad) and "hunter2" not in str(vars(ad).get("base_url"))


def test_adapters_declare_limits_and_points():
    for vendor in ("solarman", "sungrow"):  # the PV-plant vendors; the others test their own
        cls = get_adapter_class(vendor)
        assert cls.limits.interval_s == 900 and cls.limits.max_range_s == 7 * 86400
        assert cls.limits.calls_per_minute and (cls.limits.calls_per_day or cls.limits.calls_per_month)
        assert {p.key for p in cls.points} == {"energy_total", "power", "energy_today"}
        units = {p.key: p.unit for p in cls.points}
        assert units == {"energy_total": "kWh", "power": "kW", "energy_today": "kWh"}
        assert [p.key for p in cls.points if p.daily_reset] == ["energy_today"]


def test_adapter_does_not_stall_on_first_contact(kit, start_cloud):
    # configured plants are warmed when the app is created: the first call answers fast
    running = start_cloud()
    ad = SolarmanAdapter(running.base_url, kit.credentials("solarman"), limiter=RateLimiter.unlimited())
    t0 = time.monotonic()

    async def main():
        async with ad:
            return await ad.fetch_history(kit.SOLARMAN_PLANT, kit.NOW - kit.DAY, kit.NOW, kit.SOLARMAN_TZ)

    assert len(kit.run(main()).records) == 96
    assert time.monotonic() - t0 < 2.0


def test_a_fleet_of_homes_larger_than_a_thousand_keeps_each_home_simulated_once():
    # the caches used to be emptied at 1,024 homes / 4,096 plants: a larger bench fleet then
    # re-simulated a home's whole history on nearly every call (the emulation saturated)
    from wattline.simulator.vendor_cloud import history, homes

    profile = homes.HomeProfile(start_ts=1704067200)
    first = homes.home_history("fleet-0", profile)
    for i in range(1, 1500):
        homes.home_history(f"fleet-{i}", profile)
    assert homes.home_history("fleet-0", profile) is first
    plant = PlantProfile(start_operating_ts=1704067200, capacity_kw=5.0)
    one = history._fallback_plant(plant, 0)
    for seed in range(1, 5000):
        history._fallback_plant(plant, seed)
    assert history._fallback_plant(plant, 0) is one


def test_beyond_its_bound_the_home_cache_drops_the_least_recently_used(monkeypatch):
    from wattline.simulator.vendor_cloud import homes

    monkeypatch.setattr(homes, "MAX_HOMES", 2)
    monkeypatch.setattr(homes, "_homes", homes.OrderedDict())
    profile = homes.HomeProfile(start_ts=1704067200)
    a, b = homes.home_history("a", profile), homes.home_history("b", profile)
    assert homes.home_history("a", profile) is a  # a used last: b is the oldest now
    homes.home_history("c", profile)
    assert homes.home_history("a", profile) is a
    assert homes.home_history("b", profile) is not b


def test_a_plants_clear_sky_history_does_not_depend_on_what_other_plants_warmed():
    # plants at one place and start share the sun's part of the clear-sky curve and a
    # plant keeps its last days of samples: neither may change a value. The shared
    # (grid) path must agree with the uncached public curve, and a plant answers the
    # same first, after its neighbours, and from its kept days.
    from wattline.simulator.vendor_cloud import history

    now = int(time.time())
    profiles = [PlantProfile(capacity_kw=6.0 + k, start_operating_ts=now - 30 * 86400 + 450, seed=100 + k,
                             timezone="Australia/Sydney") for k in range(3)]
    windows = [(now - 20 * 86400, now - 19 * 86400 + 3600), (now - 7200, now + 1), (now - 900, now + 1)]

    def answers(profile):
        return [plant_series(f"p{profile.seed}", profile, a, b, now, "clear_sky") for a, b in windows]

    history._shared_sky.cache_clear()
    history._clear_sky.cache_clear()
    history._plants.clear()
    first = answers(profiles[0])
    for p in profiles[1:]:
        answers(p)
    history._clear_sky.cache_clear()  # not the window cache: the kept days and the shared sky
    again = answers(profiles[0])
    history._shared_sky.cache_clear()
    history._plants.clear()
    cold = answers(profiles[0])
    for a, b, c in zip(first, again, cold):
        for name in ("ts", "power_kw", "energy_total_kwh", "energy_today_kwh"):
            assert np.array_equal(getattr(a, name), getattr(b, name)) and np.array_equal(
                getattr(a, name), getattr(c, name)), name
    ts = first[0].ts
    assert len(ts) > 90 and first[0].power_kw.max() > 0
    assert np.array_equal(history.clear_sky_power(ts, profiles[0], profiles[0].seed), first[0].power_kw)


def test_the_emulation_keeps_an_idle_connection_open_past_uvicorns_default(cloud):
    """A minute poll reuses its account's connection (the client keeps it 75 s); with
    uvicorn's 5 s keep-alive the emulation closed it and every poll connected anew."""
    import socket

    from wattline.simulator.vendor_cloud.server import KEEPALIVE_S
    from wattline.sources.vendors.transport import KEEPALIVE_S as CLIENT_KEEPALIVE_S

    assert KEEPALIVE_S > CLIENT_KEEPALIVE_S  # the client closes an idle connection first
    request = f"GET /_emulator/health HTTP/1.1\r\nHost: {cloud.host}\r\n\r\n".encode()
    with socket.create_connection((cloud.host, cloud.port), timeout=5) as sock:
        for attempt in range(2):
            sock.sendall(request)
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200"), (attempt, answer[:80])
            if attempt == 0:
                time.sleep(6.5)  # past uvicorn's default of 5 s

"""SolarEdge Monitoring API: the mapping on real captures, and the adapter over real HTTP
against the emulated API (site-local time on DST days, 25-day windows, the daily quota
and its 429, 3 concurrent calls, malformed values, a refused key)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from wattline import clock as wclock
from wattline.simulator.vendor_cloud import BackgroundCloud, CloudConfig
from wattline.simulator.vendor_cloud import solaredge as api_mod
from wattline.simulator.vendor_cloud.homes import HomeProfile, home_history
from wattline.sources.vendors import (
    QuotaExhausted,
    RateLimiter,
    VendorAuthError,
    VendorRateLimited,
    VendorRequestError,
    get_adapter_class,
)
from wattline.sources.vendors.solaredge import (
    SolarEdgeAdapter,
    error_message,
    parse_details,
    parse_local,
    parse_meters,
    parse_power_flow,
    parse_site_values,
)
from wattline.sources.vendors.solaredge import adapter as adapter_mod
from wattline.sources.vendors.solaredge.mapping import parse_overview

FIXTURES = Path(__file__).parent / "fixtures" / "solaredge"
KEY = api_mod.DEFAULT_API_KEY
NOW = 1793491200  # 2026-11-01T00:00:00Z: both of Berlin's 2026 DST changes lie in the past
DAY = 86400
BERLIN, SYDNEY, AMSTERDAM = "Europe/Berlin", "Australia/Sydney", "Europe/Amsterdam"
SPRING_DAY = (1774738800, 1774821600)  # 2026-03-29 in Berlin: 23 hours
FALL_DAY = (1792879200, 1792969200)  # 2026-10-25 in Berlin: 25 hours
SYDNEY_SPRING_DAY = (1791036000, 1791118800)  # 2026-10-04 in Sydney: 23 hours
SITES = {
    "2001": HomeProfile(start_ts=SPRING_DAY[0] - 2 * DAY, timezone=BERLIN, latitude=52.52, longitude=13.4,
                        pv_kwp=5.0, battery_kwh=10.0, name="Berlin spring"),
    "2002": HomeProfile(start_ts=FALL_DAY[0] - 2 * DAY, timezone=BERLIN, latitude=52.52, longitude=13.4,
                        pv_kwp=5.0, battery_kwh=10.0, name="Berlin autumn"),
    "2003": HomeProfile(start_ts=SYDNEY_SPRING_DAY[0] - DAY, timezone=SYDNEY, name="Sydney spring"),
    "2004": HomeProfile(start_ts=NOW - 31 * DAY, timezone=BERLIN, latitude=52.52, longitude=13.4, name="Backfill"),
    "2005": HomeProfile(start_ts=NOW - DAY, timezone=BERLIN, latitude=52.52, longitude=13.4, name="Now"),
}


def load(name: str):
    return json.loads((FIXTURES / name).read_text())


# -- mapping on the captures -----------------------------------------------------------------


def test_hourly_energy_with_nulls_keeps_zero_and_drops_null():
    records, rejected = parse_site_values(load("site_energy_hour_with_nulls_2023-11-09.json"), AMSTERDAM)
    assert rejected == []
    # 04:00 and 07:00 are 0.0 (a reading of zero), 08-11 carry energy; the 18 nulls are no reading
    starts = [1699498800 + 3600 * h for h in (0, 3, 4, 5, 6, 7)]  # 04:00 … 11:00 local
    assert [r.ts for r in records] == [s + 3600 for s in starts]  # stamped at the slot's end
    assert [r.values["solar_kwh"] for r in records] == pytest.approx([0.0, 0.0, 0.256, 0.827, 1.39, 0.222])


def test_quarter_hour_power_is_watts_to_kilowatts():
    records, _ = parse_site_values(load("site_power_quarter_hour_2023-11-09.json"), AMSTERDAM)
    assert records[0].values == {"solar_w": pytest.approx(0.761538)}
    assert records[0].ts == int(datetime(2023, 11, 9, 12, 30, tzinfo=wzone(AMSTERDAM)).timestamp())
    records, _, _ = parse_meters(None, load("power_details_quarter_hour_commercial.json"), "Europe/Istanbul")
    assert [r.values["solar_w"] for r in records] == pytest.approx([378.23434, 390.3523, 366.6957, 278.7773])


def wzone(name):
    from wattline.domain.timeutil import zone

    return zone(name)


def test_energy_details_meters_and_missing_values():
    records, rejected, empty = parse_meters(load("energy_details_quarter_hour_TRIMMED_partly_synthetic.json"),
                                            None, BERLIN)
    assert rejected == []
    by_start = {datetime.fromtimestamp(r.ts - 900, wzone(BERLIN)).strftime("%H:%M"): r.values for r in records}
    assert "12:45" not in by_start  # every meter left the value out: no reading, not 0
    assert by_start["00:00"] == pytest.approx({"grid_export_kwh": 0.0, "grid_import_kwh": 1.0, "load_kwh": 2.01})
    assert by_start["09:00"] == pytest.approx({"self_consumption_kwh": 0.037, "solar_kwh": 0.5})
    assert by_start["12:30"]["grid_import_kwh"] == 1.0 and by_start["12:30"]["load_kwh"] == pytest.approx(6.425)
    assert empty >= 1


def test_power_flow_reads_its_unit_and_signs_from_connections():
    kw = parse_power_flow(load("current_power_flow_kW_storage.json"))
    assert kw == {"solar_w": 0.0, "load_w": pytest.approx(1.37), "grid_w": pytest.approx(0.01),
                  "battery_soc": 38.0, "battery_w": pytest.approx(1.36)}  # discharging: +
    w = parse_power_flow(load("current_power_flow_W_SYNTHETIC_ha.json"))
    assert w == {"solar_w": pytest.approx(1.5), "load_w": pytest.approx(1.5), "grid_w": pytest.approx(0.25),
                 "battery_soc": 75.0, "battery_w": pytest.approx(-0.25)}  # W, charging: −


def test_overview_time_is_site_local_and_power_is_watts():
    ts, values = parse_overview(load("site_overview_2023-11-09.json"), AMSTERDAM)
    assert ts == int(datetime(2023, 11, 9, 10, 28, 56, tzinfo=wzone(AMSTERDAM)).timestamp())
    assert values == {"solar_w": pytest.approx(1.1737279), "solar_lifetime_kwh": pytest.approx(19191.678)}


def test_error_pages_and_site_details():
    html = (FIXTURES / "error_400_missing_parameter.html").read_text()
    resp = httpx.Response(400, text=html, request=httpx.Request("GET", "https://x/site/1/energy"))
    assert error_message(resp) == "Required parameter 'startDate' is not present"
    resp = httpx.Response(403, json={"message": "Invalid token"}, request=httpx.Request("GET", "https://x/"))
    assert error_message(resp) == "Invalid token"
    with pytest.raises(VendorAuthError):
        SolarEdgeAdapter("https://x", {"api_key": "k"})._check(resp)
    with pytest.raises(VendorRequestError, match="startDate"):
        SolarEdgeAdapter("https://x", {"api_key": "k"})._check(
            httpx.Response(400, text=html, request=httpx.Request("GET", "https://x/")))
    plant = parse_details(load("sites_list_REDACTED.json")["sites"]["site"][0])
    assert (plant.vendor_plant_id, plant.timezone, plant.capacity_kw) == ("42", "America/New_York", 5.0)


def test_local_times_across_dst():
    assert parse_local("2026-03-29 02:30:00", BERLIN) == []  # skipped by spring-forward
    [(a, sa), (b, sb)] = parse_local("2026-10-25 02:30:00", BERLIN)  # repeated by fall-back
    assert b - a == 3600 and sa == sb == 0.5
    assert parse_local("2026-10-25 03:00:00", BERLIN) == [(FALL_DAY[0] + 4 * 3600, 1.0)]
    with pytest.raises(ValueError):
        parse_local("2026-10-25T03:00:00Z", BERLIN)


def test_a_value_in_the_dst_gap_or_not_a_number_is_rejected_alone():
    payload = {"energyDetails": {"timeUnit": "QUARTER_OF_AN_HOUR", "unit": "Wh", "meters": [
        {"type": "Production", "values": [{"date": "2026-03-29 01:45:00", "value": 10},
                                          {"date": "2026-03-29 02:00:00", "value": 5},
                                          {"date": "2026-03-29 03:00:00", "value": "N/A"},
                                          {"date": "2026-03-29 03:15:00", "value": 7}]}]}}
    records, rejected, _ = parse_meters(payload, None, BERLIN)
    assert [r.values["solar_kwh"] for r in records] == [0.01, 0.007]
    reasons = sorted(r.reason for r in rejected)
    assert "does not exist" in reasons[1] and "not numeric" in reasons[0]


# -- over real HTTP against the emulated API ------------------------------------------------------


class Clock:
    def __init__(self, t: float) -> None:
        self.t = float(t)
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s
        await asyncio.sleep(0)


@pytest.fixture(autouse=True)
def no_cached_zones():
    """Site zones are cached per process: none leaks from test to test."""
    adapter_mod._ZONES.clear()
    yield
    adapter_mod._ZONES.clear()


@pytest.fixture
def start_api(monkeypatch):
    """Factory: ``start_api(**settings)`` -> (cloud, emulated api, clock) until the test ends."""
    fake = Clock(NOW)
    monkeypatch.setattr(wclock, "now", fake)
    running: list[BackgroundCloud] = []

    def _start(config_kw: dict | None = None, **settings):
        cloud = BackgroundCloud(CloudConfig(clock=fake, warm_plants=False, **(config_kw or {})))
        emulated = api_mod.install(cloud.app, api_mod.SolarEdgeSettings(sites=dict(SITES), **settings))
        running.append(cloud.start())
        return cloud, emulated, fake

    yield _start
    for cloud in running:
        cloud.stop()


def adapter(cloud, fake, limiter=None, key=KEY) -> SolarEdgeAdapter:
    return SolarEdgeAdapter(cloud.base_url, {"api_key": key},
                            limiter=limiter or RateLimiter.unlimited(clock=fake),
                            sleep=fake.sleep, retry_waits_s=(0, 1, 1, 1))


def history(ad, site, a, b, tz=BERLIN):
    async def main():
        async with ad:
            return await ad.fetch_history(site, a, b, tz)

    return asyncio.run(main())


def expected_day_kwh(site: str, a: int, b: int) -> dict[str, float]:
    home = home_history(site, SITES[site])
    x, y = home.counters_at(a), home.counters_at(b)
    return {"solar_kwh": y["solar_energy_kwh"] - x["solar_energy_kwh"],
            "load_kwh": y["load_energy_kwh"] - x["load_energy_kwh"],
            "grid_import_kwh": y["grid_import_energy_kwh"] - x["grid_import_energy_kwh"]}


@pytest.mark.parametrize("site, day, tz, slots", [
    ("2001", SPRING_DAY, BERLIN, 92),  # 23 h: the 02:00-02:45 slots come without a value
    ("2002", FALL_DAY, BERLIN, 100),  # 25 h: 02:00-02:45 once, summed, split in two
    ("2003", SYDNEY_SPRING_DAY, SYDNEY, 92),
])
def test_a_dst_day_in_site_local_time(start_api, site, day, tz, slots):
    cloud, _, fake = start_api()
    # the records of the day end in (midnight, next midnight]
    result = history(adapter(cloud, fake), site, day[0] + 1, day[1] + 1, tz)
    assert result.rejected == []
    assert [r.ts for r in result.records] == list(range(day[0] + 900, day[1] + 1, 900))
    assert len(result.records) == slots
    for key, want in expected_day_kwh(site, *day).items():
        got = sum(r.values.get(key, 0.0) for r in result.records)  # a night gap: no solar reading
        assert got == pytest.approx(want, abs=slots * 1e-6)  # Wh rounded to 3 decimals
    # the vendor's grid is 96 local slots a day all the same; the skipped hour has no value
    local = datetime.fromtimestamp(day[0], wzone(tz)).strftime("%Y-%m-%d")
    with httpx.Client(base_url=cloud.base_url) as http:
        r = http.get(f"/site/{site}/energyDetails", params={
            "api_key": KEY, "startTime": f"{local} 00:00:00", "endTime": f"{local} 23:45:00",
            "timeUnit": "QUARTER_OF_AN_HOUR", "meters": "CONSUMPTION,PRODUCTION"})
    consumption, production = r.json()["energyDetails"]["meters"]
    assert len(consumption["values"]) == len(production["values"]) == 96
    assert sum("value" not in v for v in consumption["values"]) == (4 if slots == 92 else 0)
    # at night every other zero production slot has no value: no reading, the day's energy is whole
    night = [v for v in production["values"] if v["date"].endswith(("00:15:00", "00:45:00"))][:4]
    assert all("value" not in v for v in night)


def test_the_repeated_hour_is_split_evenly_and_power_repeated(start_api):
    cloud, _, fake = start_api()
    result = history(adapter(cloud, fake), "2002", FALL_DAY[0] + 1, FALL_DAY[1] + 1)
    by_ts = {r.ts: r for r in result.records}
    first = FALL_DAY[0] + 2 * 3600 + 900  # 02:00-02:15 CEST ends here
    second = first + 3600  # 02:00-02:15 CET
    assert by_ts[first].values["load_kwh"] == pytest.approx(by_ts[second].values["load_kwh"])
    assert by_ts[first].values["load_w"] == by_ts[second].values["load_w"]
    assert by_ts[first].raw["date"] == by_ts[second].raw["date"] == "2026-10-25 02:00:00"


def test_backfill_is_split_into_windows_of_at_most_25_days(start_api):
    cloud, _, fake = start_api()
    result = history(adapter(cloud, fake), "2004", NOW - 30 * DAY, NOW)
    stats = cloud.state.stats
    assert stats.count("solaredge", "details") == 1  # the site's zone, read once
    windows = [c.window for c in stats.calls if c.endpoint == "energyDetails"]
    assert len(windows) == 2 and stats.count("solaredge", "powerDetails", status=200) == 2  # 25 + 5 days
    for a, b in windows:
        span = datetime.strptime(b, "%Y-%m-%d %H:%M:%S") - datetime.strptime(a, "%Y-%m-%d %H:%M:%S")
        assert span.total_seconds() <= 25 * DAY + 900
    assert stats.errors() == {}
    ts = [r.ts for r in result.records]
    assert ts == list(range(NOW - 30 * DAY, NOW, 900))  # every slot once, the last ends before now
    # a 28-day window is refused by the API as by the real one
    with httpx.Client(base_url=cloud.base_url) as http:
        r = http.get("/site/2004/energyDetails", params={"api_key": KEY, "startTime": "2026-10-01 00:00:00",
                                                         "endTime": "2026-10-29 00:00:00",
                                                         "timeUnit": "QUARTER_OF_AN_HOUR"})
    assert r.status_code == 403 and "one month" in r.json()["message"]


def test_the_daily_quota_is_never_exceeded_by_the_adapters_limiter(start_api):
    cloud, _, fake = start_api()
    limiter = RateLimiter.from_limits(SolarEdgeAdapter.limits, clock=fake, sleep=fake.sleep)
    ad = adapter(cloud, fake, limiter=limiter)

    async def main():
        polls = 0
        async with ad:
            while True:
                try:
                    await ad.fetch_latest("2005", BERLIN)
                except QuotaExhausted as exc:
                    return polls, exc
                polls += 1

    polls, exc = asyncio.run(main())
    stats = cloud.state.stats
    assert stats.count("solaredge") == 300 == limiter.usage()["calls_today"]
    assert stats.count("solaredge", status=429) == 0
    assert polls == 149  # details once, then two calls a poll
    assert exc.resets_at_ts == NOW + DAY
    # the API itself refuses the 301st call of the day: 429 without Retry-After
    with httpx.Client(base_url=cloud.base_url) as http:
        r = http.get("/site/2005/overview", params={"api_key": KEY})
    assert r.status_code == 429 and "retry-after" not in r.headers
    # an adapter that does not know (another process) gets 429, backs off 15 min, no retry storm
    other = adapter(cloud, fake)

    async def again():
        async with other:
            await other.fetch_latest("2005", BERLIN)

    with pytest.raises(VendorRateLimited) as err:
        asyncio.run(again())
    assert err.value.retry_after_s == 900 and len(err.value.calls) == 1
    assert other.limiter.usage()["blocked_for_s"] == pytest.approx(900)


def test_three_concurrent_calls_at_most(start_api):
    cloud, _, fake = start_api(hold_s=0.2)

    async def blast():
        async with httpx.AsyncClient(base_url=cloud.base_url) as http:
            return await asyncio.gather(*(http.get("/site/2005/details", params={"api_key": KEY})
                                          for _ in range(6)))

    answers = asyncio.run(blast())
    refused = [r for r in answers if r.status_code == 429]
    assert len(refused) == 3 and all(r.headers["retry-after"] == "1" for r in refused)
    before = cloud.state.stats.count("solaredge", status=429)
    limiter = RateLimiter.unlimited(clock=fake)
    ads = [adapter(cloud, fake, limiter=limiter) for _ in range(6)]  # one account, six jobs at once

    async def polls():
        async def one(ad):
            async with ad:
                return await ad.fetch_latest("2005", BERLIN)

        return await asyncio.gather(*(one(ad) for ad in ads))

    results = asyncio.run(polls())
    assert all(len(r.records) == 1 for r in results)
    assert cloud.state.stats.count("solaredge", status=429) == before  # the semaphore held the 4th


def test_latest_values_from_overview_and_power_flow(start_api):
    cloud, emulated, fake = start_api()

    async def main():
        async with adapter(cloud, fake) as ad:
            return await ad.fetch_latest("2005", BERLIN)

    [rec] = asyncio.run(main()).records
    again = asyncio.run(main())  # a new adapter, as a job per poll would build
    assert [c.path for c in again.calls] == ["/site/2005/overview", "/site/2005/currentPowerFlow"]
    assert cloud.state.stats.count("solaredge", "details") == 1  # the zone is read once a day
    assert rec.ts == NOW  # lastUpdateTime, site-local, back to UTC
    live = home_history("2005", SITES["2005"]).live_at(NOW - 1)
    assert rec.values["load_w"] == pytest.approx(live["load_kw"], abs=0.005)  # kW with 2 decimals
    assert rec.values["grid_w"] == pytest.approx(live["grid_kw"], abs=0.005)
    assert rec.values["battery_w"] == pytest.approx(live["battery_kw"], abs=0.005)
    assert rec.values["battery_soc"] == round(live["soc_pct"])
    assert rec.values["solar_lifetime_kwh"] > 0


def test_malformed_values_are_rejected_alone_not_fatal(start_api):
    # calls: details, energyDetails (malformed), powerDetails
    cloud, _, fake = start_api(config_kw={"scripted_faults": [None, "malformed", None]})
    result = history(adapter(cloud, fake), "2005", NOW - 6 * 3600, NOW)
    assert len(result.rejected) == 5  # the first value of each energy meter
    assert all("not numeric" in r.reason for r in result.rejected)
    assert len(result.records) == 24  # the slot still has its power values


def test_a_refused_key_and_add_account(start_api):
    cloud, _, fake = start_api()
    ad = adapter(cloud, fake, key="wrong-key")

    async def main():
        async with ad:
            await ad.test_connection()

    with pytest.raises(VendorAuthError) as err:
        asyncio.run(main())
    assert "wrong-key" not in str(err.value) and all("wrong-key" not in c.path for c in err.value.calls)
    assert get_adapter_class("solaredge") is SolarEdgeAdapter
    from wattline.provisioning import validate_vendor_credentials
    from wattline.sources.vendors import InvalidCredentials

    assert validate_vendor_credentials("solaredge", {"api_key": KEY}).to_storage() == {"api_key": KEY}
    with pytest.raises(InvalidCredentials, match="missing key 'api_key'"):
        validate_vendor_credentials("solaredge", {"apiKey": KEY})


def test_a_dst_day_through_the_pipeline_gives_the_local_days_energy(start_api, dbs, pipeline, tmp_path):
    from helpers import aggregate_rows

    from wattline import provisioning
    from wattline.config import Settings
    from wattline.sources.vendors.normalize import records_to_batch
    from wattline.store.series_resolver import RegistrySeriesResolver

    cloud, _, fake = start_api()
    with dbs.main.begin() as conn:
        provisioning.add_vendor_account(conn, Settings(data_dir=tmp_path / "data"), "solaredge", "se",
                                        {"api_key": KEY}, rate_limits=provisioning.UNLIMITED)
        pid = provisioning.add_vendor_plant(conn, "autumn roof", "solaredge", "2002", BERLIN)
    fetched = history(adapter(cloud, fake), "2002", FALL_DAY[0] + 1, FALL_DAY[1] + 1)
    resolver = RegistrySeriesResolver(dbs.main_reader)
    pipeline.ingest(records_to_batch(resolver, pid, fetched.records, "vendor:solaredge"), now=NOW)
    want = expected_day_kwh("2002", *FALL_DAY)
    for key in ("solar_kwh", "load_kwh", "grid_import_kwh"):
        sid = resolver.resolve(pid, key).series_id
        [(_, start, end, milli_wh, *_)] = [r for r in aggregate_rows(dbs, sid)
                                            if r[0] == "day" and r[1] == FALL_DAY[0]]
        assert (start, end) == FALL_DAY  # the local day: 25 hours
        assert milli_wh / 1e6 == pytest.approx(want[key], abs=1e-4)

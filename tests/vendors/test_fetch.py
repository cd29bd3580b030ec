"""Adapters against the emulated clouds over real HTTP: completeness, pagination, range splits."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import httpx
import pytest

from wattline.sources.vendors import RateLimiter, VendorLimits, VendorRequestError, get_adapter_class
from wattline.sources.vendors.solarman import SolarmanAdapter
from wattline.sources.vendors.sungrow import SungrowAdapter


def utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=timezone.utc).timestamp())


def adapter(kit, cloud, vendor: str, **kw):
    kw.setdefault("limiter", RateLimiter.unlimited())
    kw.setdefault("retry_waits_s", kit.FAST_WAITS)
    return get_adapter_class(vendor)(cloud.base_url, kit.credentials(vendor), **kw)


def fetch(kit, ad, plant: str, start: int, end: int, tz: str):
    async def main():
        async with ad:
            return await ad.fetch_history(plant, start, end, tz)

    return kit.run(main())


def assert_matches(kit, result, vendor: str, plant: str, start: int, end: int, missing: set[int] = frozenset()):
    expected = kit.expected_records(vendor, plant, start, end)
    got = {r.ts: r.values for r in result.records}
    ts = [r.ts for r in result.records]
    assert ts == sorted(set(ts)), "records must be sorted, each timestamp once"
    assert set(got) == set(expected) - set(missing)
    assert all(got[t] == expected[t] for t in got), "values must equal the emulator's history"
    assert result.rejected == []


def test_solarman_multi_week_fetch_is_complete_and_exact(kit, cloud):
    cloud.state.stats.reset()
    start, end = utc(2024, 2, 3, 5, 7), utc(2024, 2, 24, 5, 7)  # 3 weeks, not on a 15-min boundary
    result = fetch(kit, adapter(kit, cloud, "solarman"), kit.SOLARMAN_PLANT, start, end, kit.SOLARMAN_TZ)
    assert len(result.records) == 3 * 7 * 96
    assert result.records[0].ts == utc(2024, 2, 3, 5, 15)
    assert_matches(kit, result, "solarman", kit.SOLARMAN_PLANT, start, end)
    assert result.records[0].raw["stationId"] == int(kit.SOLARMAN_PLANT)
    # 3 windows of 7 days, each 672 records on 2 pages of <= 500; one token call
    history = [c for c in result.calls if c.path == "/station/v1.0/history"]
    assert [c.records for c in history] == [500, 172] * 3
    assert all(c.status == 200 and c.attempt == 1 and c.error is None for c in result.calls)
    assert sum(1 for c in result.calls if c.path == "/account/v1.0/token") == 1
    pages = cloud.state.stats.served_data_pages("solarman")
    assert sorted(p for (_, _, _, p) in pages) == [1, 1, 1, 2, 2, 2]
    assert max(pages.values()) == 1  # nothing fetched twice
    windows = {w for (_, _, w, _) in pages}
    assert all(int(b) - int(a) < 7 * kit.DAY for a, b in windows)


def test_solarman_small_pages_are_followed(kit, cloud):
    class SmallPages(SolarmanAdapter):
        limits = VendorLimits(max_range_s=2 * 86400, page_size=50, interval_s=900, calls_per_minute=None)

    start, end = utc(2024, 6, 1), utc(2024, 6, 6)
    ad = SmallPages(cloud.base_url, kit.credentials("solarman"), limiter=RateLimiter.unlimited())
    result = fetch(kit, ad, kit.SOLARMAN_PLANT, start, end, kit.SOLARMAN_TZ)
    assert_matches(kit, result, "solarman", kit.SOLARMAN_PLANT, start, end)
    history = [c for c in result.calls if c.path == "/station/v1.0/history"]
    # windows of 2, 2 and 1 days: 192 records = 4 pages, 192 = 4 pages, 96 = 2 pages
    assert [c.records for c in history] == [50, 50, 50, 42] * 2 + [50, 46]


def test_sungrow_multi_week_fetch_is_complete_and_exact(kit, cloud):
    cloud.state.stats.reset()
    start, end = utc(2024, 5, 1), utc(2024, 5, 22)
    result = fetch(kit, adapter(kit, cloud, "sungrow"), kit.SUNGROW_PLANT, start, end, kit.SUNGROW_TZ)
    assert len(result.records) == 21 * 96
    assert_matches(kit, result, "sungrow", kit.SUNGROW_PLANT, start, end)
    raw = result.records[0].raw
    assert raw["ps_key"] == "1129147_11_0_0"
    assert raw["time_stamp"] == "20240501100000"  # local wall time (AEST, +10)
    assert set(raw) == {"ps_key", "time_stamp", "p83024", "p83033", "p83022"}
    assert all(isinstance(raw[p], str) for p in ("p83024", "p83033", "p83022"))
    data_calls = [c for c in result.calls if c.path.endswith("queryMutiPointDataList")]
    assert [c.records for c in data_calls] == [672, 672, 672]
    assert max(cloud.state.stats.served_data_pages("sungrow").values()) == 1


def test_sungrow_dst_start_window_is_shortened_not_refused(kit, cloud):
    # Sydney skips 02:00-03:00 on 2024-10-06: a 7-day UTC window spans 7 d + 1 h of wall time
    start, end = utc(2024, 10, 1), utc(2024, 10, 15)
    ad = adapter(kit, cloud, "sungrow")
    windows = ad.windows(start, end, kit.SUNGROW_TZ)
    assert windows[0] == (start, start + 7 * kit.DAY - 3600)
    assert windows[-1][1] == end and len(windows) == 3
    result = fetch(kit, ad, kit.SUNGROW_PLANT, start, end, kit.SUNGROW_TZ)
    assert_matches(kit, result, "sungrow", kit.SUNGROW_PLANT, start, end)
    assert all(c.status == 200 for c in result.calls)


def test_sungrow_dst_end_loses_only_the_repeated_wall_hour(kit, cloud):
    # Sydney repeats 02:00-03:00 on 2024-04-07; the vendor keys values by wall time,
    # so the second pass of that hour (UTC 16:00-16:45 on 04-06) cannot be delivered
    start, end = utc(2024, 4, 5), utc(2024, 4, 9)
    result = fetch(kit, adapter(kit, cloud, "sungrow"), kit.SUNGROW_PLANT, start, end, kit.SUNGROW_TZ)
    repeated = {utc(2024, 4, 6, 16, m) for m in (0, 15, 30, 45)}
    assert_matches(kit, result, "sungrow", kit.SUNGROW_PLANT, start, end, missing=repeated)
    stamps = [r.raw["time_stamp"] for r in result.records]
    assert stamps.count("20240407023000") == 1


def test_fetch_stops_at_the_vendors_now(kit, cloud):
    for vendor, plant, tz in [
        ("solarman", kit.SOLARMAN_PLANT, kit.SOLARMAN_TZ),
        ("sungrow", kit.SUNGROW_PLANT, kit.SUNGROW_TZ),
    ]:
        result = fetch(kit, adapter(kit, cloud, vendor), plant, kit.NOW - kit.DAY, kit.NOW + kit.DAY, tz)
        assert result.records[-1].ts == kit.NOW  # "--" slots after now are not readings
        assert len(result.records) == 97 and result.rejected == []


def test_fetch_before_start_is_empty(kit, cloud):
    start = kit.START - 7 * kit.DAY
    for vendor, plant, tz in [
        ("solarman", kit.SOLARMAN_PLANT, kit.SOLARMAN_TZ),
        ("sungrow", kit.SUNGROW_PLANT, kit.SUNGROW_TZ),
    ]:
        result = fetch(kit, adapter(kit, cloud, vendor), plant, start, kit.START, tz)
        assert result.records == [] and result.rejected == []
        assert result.calls and all(c.status == 200 for c in result.calls)


def test_ten_months_backfill_in_one_call(kit, cloud):
    end = kit.START + 300 * kit.DAY
    for vendor, plant, tz in [
        ("solarman", kit.SOLARMAN_PLANT, kit.SOLARMAN_TZ),
        ("sungrow", kit.SUNGROW_PLANT, kit.SUNGROW_TZ),
    ]:
        result = fetch(kit, adapter(kit, cloud, vendor), plant, kit.START, end, tz)
        ts, total = result.series("energy_total")
        expected_n = 300 * 96 - (4 if vendor == "sungrow" else 0)  # one DST end passed
        assert len(ts) == expected_n
        assert (total[1:] >= total[:-1]).all()
        first = kit.expected_records(vendor, plant, kit.START, kit.START + 1)[kit.START]
        assert total[0] == first["energy_total"]


def test_ranges_longer_than_the_vendor_allows_are_refused(kit, cloud):
    class Greedy(SolarmanAdapter):
        limits = VendorLimits(max_range_s=10 * 86400, page_size=500, interval_s=900, calls_per_minute=None)

    ad = Greedy(cloud.base_url, kit.credentials("solarman"), limiter=RateLimiter.unlimited(), retry_waits_s=kit.FAST_WAITS)
    with pytest.raises(VendorRequestError) as exc:
        fetch(kit, ad, kit.SOLARMAN_PLANT, kit.START, kit.START + 10 * kit.DAY, kit.SOLARMAN_TZ)
    assert exc.value.code == "2101024" and "shorter than 7 days" in str(exc.value)
    assert len([c for c in exc.value.calls if c.path == "/station/v1.0/history"]) == 1  # not retried

    class GreedySungrow(SungrowAdapter):
        limits = VendorLimits(max_range_s=8 * 86400, page_size=None, interval_s=900, calls_per_minute=None)

    ad = GreedySungrow(cloud.base_url, kit.credentials("sungrow"), limiter=RateLimiter.unlimited())
    with pytest.raises(VendorRequestError) as exc:
        fetch(kit, ad, kit.SUNGROW_PLANT, kit.START, kit.START + 8 * kit.DAY, kit.SUNGROW_TZ)
    assert exc.value.code == "-1" and "er_parameter_value_invalid" in str(exc.value)


def test_emulator_error_shapes_over_raw_http(kit, cloud):
    with httpx.Client(base_url=cloud.base_url) as http:
        tok = http.post(
            "/account/v1.0/token", params={"appId": "3024060312"},
            json={"appSecret": "wattline-demo-secret", "email": "demo@wattline.local",
                  "password": hashlib.sha256(b"wattline-demo").hexdigest()},
        ).json()
        assert tok["success"] is True and isinstance(tok["expires_in"], str)
        bad = http.post(
            "/station/v1.0/history", headers={"Authorization": f"Bearer {tok['access_token']}"},
            json={"stationId": 1, "timeType": 1, "startTimestamp": 0, "endTimestamp": 8 * 86400, "page": 1, "size": 10},
        )
        assert bad.status_code == 200 and bad.json()["success"] is False and bad.json()["code"] == "2101024"
        unauth = http.post("/station/v1.0/history", json={})
        assert unauth.status_code == 401 and unauth.json()["code"] == "2101000"
        expired = http.post(
            "/v1/commonService/queryMutiPointDataList",
            json={"appkey": kit.credentials("sungrow")["appkey"], "token": "nope"},
        ).json()
        assert expired == {"result_code": "E00003", "result_data": None, "result_msg": "er_token_login_invalid"}


def test_list_plants_follows_pagination(kit, start_cloud):
    from wattline.simulator.vendor_cloud import PlantProfile

    running = start_cloud(history_source="clear_sky")  # 24 plants' live values: keep it cheap
    for i in range(23):
        running.config.sungrow.plants[str(5000 + i)] = PlantProfile(capacity_kw=5.0 + i, timezone="Europe/Berlin")
    running.config.solarman.plants["777"] = PlantProfile(capacity_kw=42.0, timezone="Europe/Berlin", name="Roof")

    async def main():
        async with adapter(kit, running, "sungrow") as sg, adapter(kit, running, "solarman") as sm:
            await sg.test_connection()
            return await sg.list_plants(), await sm.list_plants()

    sungrow_plants, solarman_plants = kit.run(main())
    assert len(sungrow_plants) == 24  # 23 + the configured test plant
    assert running.state.stats.count("sungrow", "getPsList") == 1 + 3  # test_connection + 3 pages of 10
    by_id = {p.vendor_plant_id: p for p in sungrow_plants}
    assert by_id["5003"].capacity_kw == 8.0
    assert by_id["5003"].start_operating_ts == kit.START  # install_date at the plant's GMT offset
    roof = {p.vendor_plant_id: p for p in solarman_plants}["777"]
    assert (roof.name, roof.capacity_kw, roof.timezone) == ("Roof", 42.0, "Europe/Berlin")


@pytest.mark.parametrize("vendor", ["solarman", "sungrow"])
def test_fetch_latest_is_the_newest_record_of_the_history(kit, cloud, vendor):
    plant, tz = (kit.SOLARMAN_PLANT, kit.SOLARMAN_TZ) if vendor == "solarman" else (kit.SUNGROW_PLANT, kit.SUNGROW_TZ)
    now = utc(2024, 6, 5, 10, 7)
    ad = adapter(kit, cloud, vendor)

    async def main():
        async with ad:
            return await ad.fetch_latest(plant, tz, now_ts=now)

    latest = kit.run(main())
    expected = kit.expected_records(vendor, plant, now - 3600, now + 1)
    newest = max(expected)
    assert [(r.ts, r.values) for r in latest.records] == [(newest, expected[newest])]
    assert newest == utc(2024, 6, 5, 10, 0) and latest.calls

"""Fronius local Solar API: mapping against the real captures, then the adapter over
real HTTP against the emulation (power flow, one-local-day archive windows incl. a DST
day, the HTML 404, a refused range, faults, malformed values rejected with a reason),
and the polled counters through the pipeline into the ledger."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from wattline import provisioning
from wattline.domain.sources import StaticSeriesResolver
from wattline.simulator.vendor_cloud import fronius as emu
from wattline.simulator.vendor_cloud.home_flow import home_flow
from wattline.sources.vendors import RateLimiter, VendorRequestError, VendorUnavailable
from wattline.sources.vendors.fronius import (
    LOCAL_POINTS,
    PUSH_POINTS,
    FroniusAdapter,
    check_envelope,
    parse_archive,
    parse_power_flow,
)
from wattline.sources.vendors.normalize import records_to_batch
from wattline.store.series_resolver import load_series

FIXTURES = Path(__file__).parent / "fixtures" / "fronius"
SITE = emu.DEFAULT_SITE
TZ = "Australia/Sydney"


def load(name: str):
    return json.loads((FIXTURES / name).read_text())


# -- mapping -----------------------------------------------------------------------------------


def test_power_flow_of_a_symo_hybrid_maps_signs_and_units():
    (rec,), rejected = parse_power_flow(load("GetPowerFlowRealtimeData_SymoHybrid_fw1.23.2-1.json"))
    assert rejected == []
    assert rec.ts == int(datetime.fromisoformat("2022-09-05T17:24:40+02:00").timestamp())
    assert rec.values == {
        "solar_w": 1.5136, "load_w": 0.23526, "grid_w": -1.20974,  # exporting
        "battery_w": 0.0, "solar_kwh": 25706.3671, "solar_today_kwh": 18.186, "battery_soc": 99.0,
    }


def test_power_flow_of_a_gen24_leaves_its_null_day_energy_out():
    (rec,), _ = parse_power_flow(load("GetPowerFlowRealtimeData_GEN24_storage.json"))
    assert "solar_today_kwh" not in rec.values  # E_Day is null on a GEN24: not measured, not 0
    assert rec.values["battery_soc"] == pytest.approx(4.6)
    assert rec.values["load_w"] == pytest.approx(2.4593092254638673)
    assert rec.values["battery_w"] == pytest.approx(0.00015907810628414154)  # P_Akku + = discharge, kept
    assert rec.values["grid_w"] == pytest.approx(2.2749)


def test_power_flow_at_night_keeps_a_measured_zero_and_drops_a_null():
    (rec,), _ = parse_power_flow(load("GetPowerFlowRealtimeData.json"))
    assert "solar_w" not in rec.values and "battery_w" not in rec.values  # P_PV, P_Akku null
    assert rec.values["solar_today_kwh"] == 0.0  # E_Day 0 is a reading
    assert rec.values["solar_kwh"] == 26213.502
    assert "battery_soc" not in rec.values


def test_the_archive_day_is_288_five_minute_meter_counters():
    records, rejected = parse_archive(load("GetArchiveData_System_Day_5min_2017-08-30.json"))
    assert rejected == [] and len(records) == 288
    midnight = int(datetime.fromisoformat("2017-08-30T00:00:00+02:00").timestamp())
    assert records[0].ts == midnight and records[-1].ts == midnight + 287 * 300
    assert records[0].values == {"grid_import_kwh": 1156.412, "grid_export_kwh": 2343.918}
    for key in ("grid_import_kwh", "grid_export_kwh"):
        values = [r.values[key] for r in records]
        assert values == sorted(values)  # cumulative counters


def test_malformed_answers_are_rejected_with_a_reason():
    flow = load("GetPowerFlowRealtimeData_SymoHybrid_fw1.23.2-1.json")
    flow["Body"]["Data"]["Site"]["P_Grid"] = "n/a"
    records, (bad,) = parse_power_flow(flow)
    assert records == [] and bad.reason == "Site.P_Grid is not numeric: 'n/a'"
    flow["Head"]["Timestamp"] = "2022-09-05 17:24:40"
    assert "has no offset" in parse_power_flow(flow)[1][0].reason
    archive = load("GetArchiveData_System_Day_5min_2017-08-30.json")
    values = archive["Body"]["Data"]["meter:16220118"]["Data"]["EnergyReal_WAC_Plus_Absolute"]["Values"]
    values["300"] = "n/a"
    records, (bad,) = parse_archive(archive)
    assert len(records) == 288 and "grid_import_kwh" not in records[1].values  # its export stays
    assert bad.raw["offset"] == "300" and "not numeric" in bad.reason
    with pytest.raises(VendorRequestError, match="255"):
        check_envelope({"Head": {"Status": {"Code": 255, "Reason": "Query range too long"}}, "Body": {"Data": {}}})
    with pytest.raises(VendorUnavailable):
        check_envelope({"Body": {}})


def test_a_fronius_system_gets_both_the_push_and_the_local_points(dbs):
    with dbs.main.begin() as conn:
        pid = provisioning.add_vendor_plant(conn, "Fronius home", "fronius", SITE, TZ)
    keys = {s.point_key: s for s in load_series(dbs.main_reader, [pid])}
    assert set(keys) == {p.key for p in PUSH_POINTS + LOCAL_POINTS}
    assert keys["solar_w"].metric_type.value == "power" and keys["solar_kwh"].metric_type.value == "counter"
    assert keys["solar_interval_kwh"].metric_type.value == "interval_energy"


# -- over HTTP against the emulation ------------------------------------------------------------


def adapter(kit, running, **kw) -> FroniusAdapter:
    clock = kit.FakeClock(0.0)
    kw.setdefault("retry_waits_s", kit.FAST_WAITS)
    return FroniusAdapter(running.base_url, {}, limiter=RateLimiter.unlimited(clock=clock, sleep=clock.sleep),
                          sleep=clock.sleep, **kw)


def test_latest_is_the_emulated_power_flow(kit, cloud):
    async def main():
        async with adapter(kit, cloud) as ad:
            await ad.test_connection()
            return await ad.fetch_latest(SITE, TZ)

    (rec,) = kit.run(main()).records
    f = home_flow(SITE, emu.FroniusSettings().site(SITE), kit.NOW)
    assert rec.ts == kit.NOW
    assert rec.values["load_w"] == pytest.approx(f.load_kw, abs=1e-5)
    assert rec.values["battery_w"] == pytest.approx(-f.battery_kw, abs=1e-5)  # the flow's + charging
    assert rec.values["grid_w"] == pytest.approx(f.grid_kw, abs=1e-5)
    assert rec.values["solar_kwh"] == pytest.approx(f.solar_kwh, abs=1e-4)


def test_history_asks_one_local_day_per_call_through_a_dst_day(kit, cloud):
    cloud.state.stats.reset()
    start = int(datetime(2024, 10, 5, tzinfo=emu.zone(TZ)).timestamp())  # local midnight, Sydney
    end = int(datetime(2024, 10, 7, tzinfo=emu.zone(TZ)).timestamp())  # 6 Oct has 23 hours

    async def main():
        async with adapter(kit, cloud) as ad:
            return await ad.fetch_history(SITE, start, end, TZ)

    got = kit.run(main())
    assert [c.records for c in got.calls] == [2 * 288, 2 * 276]  # two channels per 5-minute slot
    assert len(got.records) == 288 + 276 and got.rejected == []
    assert got.records[0].ts == start and got.records[-1].ts == end - 300
    windows = [c.window for c in cloud.state.stats.calls if c.endpoint == "GetArchiveData"]
    assert windows == [("05.10.2024", "05.10.2024"), ("06.10.2024", "06.10.2024")]
    profile = emu.FroniusSettings().site(SITE)
    for rec in got.records[::50]:
        f = home_flow(SITE, profile, rec.ts)
        assert rec.values == {"grid_import_kwh": round(f.grid_import_kwh * 1000) / 1000,
                              "grid_export_kwh": round(f.grid_export_kwh * 1000) / 1000}


def test_an_unknown_path_is_the_devices_html_404_and_a_long_range_is_refused(kit, cloud):
    r = httpx.get(f"{cloud.base_url}/solar_api/v1/GetNoSuchThing.cgi")
    assert r.status_code == 404 and "<title>404 - Not Found</title>" in r.text
    r = httpx.get(f"{cloud.base_url}/solar_api/v1/GetArchiveData.cgi",
                  params={"Scope": "System", "StartDate": "01.10.2024", "EndDate": "20.10.2024",
                          "Channel": "EnergyReal_WAC_Plus_Absolute"})
    assert r.json()["Head"]["Status"]["Code"] == 255

    class Wrong(FroniusAdapter):
        async def fetch_latest(self, vendor_plant_id, timezone, *, now_ts=None):
            return await self._call("GET", "/solar_api/v1/GetNoSuchThing.cgi", calls=[])

    async def main():
        async with Wrong(cloud.base_url, {}, limiter=RateLimiter.unlimited()) as ad:
            await ad.fetch_latest(SITE, TZ)

    with pytest.raises(VendorRequestError, match="404"):
        kit.run(main())


def test_the_same_api_serves_many_devices_under_sites(kit, cloud):
    async def main():
        async with FroniusAdapter(f"{cloud.base_url}/sites/other-site", {}, limiter=RateLimiter.unlimited()) as ad:
            return await ad.fetch_latest("other-site", "UTC")

    (rec,) = kit.run(main()).records
    assert rec.values["load_w"] > 0


def test_faults_are_retried_and_malformed_values_rejected(kit, start_cloud):
    running = start_cloud(scripted_faults=["503", "429", "malformed", None, "malformed"], retry_after_s=3)
    clock = kit.FakeClock(0.0)
    ad = FroniusAdapter(running.base_url, {}, limiter=RateLimiter.unlimited(clock=clock, sleep=clock.sleep),
                        sleep=clock.sleep, retry_waits_s=kit.FAST_WAITS)
    start = int(datetime(2024, 10, 30, tzinfo=emu.zone(TZ)).timestamp())

    async def main():
        async with ad:
            latest = await ad.fetch_latest(SITE, TZ)  # 503, 429, then a malformed power flow
            history = await ad.fetch_history(SITE, start, start + 2 * 86400, TZ)  # day 2 malformed
            return latest, history

    latest, history = kit.run(main())
    assert latest.records == [] and latest.rejected[0].reason == "Site.P_Grid is not numeric: 'n/a'"
    assert 3 in clock.sleeps  # Retry-After honoured
    assert 1 <= len(history.rejected) <= 3 and all("not numeric" in r.reason or r.raw["value"] is None
                                                   for r in history.rejected)
    assert len(history.records) == 2 * 288  # a damaged value drops that value, not its instant


def test_polled_counters_reach_the_ledger(kit, cloud, dbs):
    from wattline.pipeline import Pipeline

    with dbs.main.begin() as conn:
        pid = provisioning.add_vendor_plant(conn, "Fronius home", "fronius", SITE, TZ)
    start = int(datetime(2024, 10, 30, tzinfo=emu.zone(TZ)).timestamp())

    async def main():
        async with adapter(kit, cloud) as ad:
            return await ad.fetch_history(SITE, start, start + 86400, TZ)

    got = kit.run(main())
    resolver = StaticSeriesResolver(load_series(dbs.main_reader, [pid]))
    batch = records_to_batch(resolver, pid, got.records, "fronius-local")
    pipeline = Pipeline(dbs.telemetry, dbs.main_reader)
    assert pipeline.ingest(batch).readings_written == 2 * 288
    assert pipeline.ingest(batch).readings_written == 0  # idempotent
    sid = resolver.resolve(pid, "grid_import_kwh").series_id
    with dbs.telemetry.connect() as c:
        milli_wh = c.exec_driver_sql(f"SELECT SUM(delta_milli_wh) FROM readings WHERE series_id = {int(sid)}").scalar()
    first, last = got.records[0].values["grid_import_kwh"], got.records[-1].values["grid_import_kwh"]
    assert milli_wh == round((last - first) * 1e6)


def test_the_backfill_job_fetches_the_archive_day_by_day_and_resumes(kit, cloud, dbs, tmp_path):
    import asyncio

    from world import make_ctx
    from wattline.jobs.backfill import backfill_plant

    ctx = make_ctx(dbs, tmp_path)
    with dbs.main.begin() as conn:
        account = provisioning.add_vendor_account(conn, ctx.settings, "fronius", "fr", {}, base_url=cloud.base_url,
                                                  rate_limits=dict(provisioning.UNLIMITED))
        pid = provisioning.add_vendor_plant(conn, "Fronius home", "fronius", SITE, TZ, vendor_account_id=account,
                                            start_operating_time=kit.NOW - 2 * kit.DAY)
    first = asyncio.run(backfill_plant(ctx, pid, now=kit.NOW))
    assert first.success and first.recordsSynced == 2 * 288 + 1  # up to and including "now"
    again = asyncio.run(backfill_plant(ctx, pid, now=kit.NOW))
    assert again.recordsSynced == 0  # resumed after the last stored reading: nothing refetched
    sid = {s.point_key: s.series_id for s in load_series(dbs.main_reader, [pid])}["grid_export_kwh"]
    with dbs.telemetry.connect() as c:
        n, last = c.exec_driver_sql(f"SELECT COUNT(*), MAX(value) FROM readings WHERE series_id = {int(sid)}").one()
    f = home_flow(SITE, emu.FroniusSettings().site(SITE), kit.NOW)
    assert n == 2 * 288 + 1 and last == round(f.grid_export_kwh * 1000) / 1000

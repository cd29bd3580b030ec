"""Selectronic select.live: the hfdata mapping on real captures, and the adapter over real
HTTP against the emulated portal (session reuse, an expired session, the minute-48-52
5xx window, malformed answers, a refused login, add-account)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from wattline import clock as wclock
from wattline.simulator.vendor_cloud import BackgroundCloud, CloudConfig
from wattline.simulator.vendor_cloud import selectronic as portal_mod
from wattline.simulator.vendor_cloud.homes import HomeProfile
from wattline.sources.vendors import RateLimiter, VendorAuthError, VendorUnavailable, get_adapter_class
from wattline.sources.vendors.selectronic import SelectronicAdapter, is_login_page, parse_hfdata, parse_login
from wattline.sources.vendors.selectronic import adapter as adapter_mod
from wattline.sources.vendors.selectronic.mapping import POINTS

FIXTURES = Path(__file__).parent / "fixtures" / "selectronic"
CREDS = dict(portal_mod.DEFAULT_CREDENTIALS)
SYSTEM = "1586"
HOUR0 = 1790002800  # 2026-09-21T13:00:00Z: minute 0 of an hour
SYDNEY = "Australia/Sydney"
PROFILE = HomeProfile(start_ts=HOUR0 - 2 * 86400, timezone=SYDNEY, name="SP PRO test")


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


# -- mapping on the captures -----------------------------------------------------------------


def test_real_capture_maps_to_canonical_units_and_signs():
    payload = load("point_local_solarmonweb_2020-05-30.json")
    [rec], rejected = parse_hfdata(payload)
    assert rejected == []
    assert rec.ts == 1590829082  # items.timestamp, epoch s
    v = rec.values
    # solar = AC-coupled inverter + DC shunt, W -> kW
    assert v["solar_w"] == pytest.approx((0 + 11.53564453125) / 1000)
    assert v["load_w"] == pytest.approx(0.2366302490234375)
    assert v["battery_w"] == pytest.approx(0.29608154296875)  # sign kept: + discharging
    assert v["grid_w"] == 0.0 and str(v["grid_w"]) == "0.0"  # no -0.0
    assert v["battery_soc"] == pytest.approx(96.05859375)
    # *_wh_* are kWh despite the name: taken as they are
    assert v["solar_kwh"] == pytest.approx(2396.128857421875)
    assert v["grid_import_kwh"] == pytest.approx(1.87880859375)
    assert v["load_today_kwh"] == pytest.approx(8.625439453125)
    assert set(v) == {p.key for p in POINTS}
    assert rec.raw is payload


def test_grid_sign_is_flipped_import_positive():
    # selpi: importing 3.56 W (grid_in_wh_today grows) is reported as grid_w -3.56
    [rec], _ = parse_hfdata(load("point_EMULATED_by_selpi.json"))
    assert rec.values["grid_w"] == pytest.approx(3.558349609375e-3)
    [rec], _ = parse_hfdata(load("point_local_solarmonweb_2025-03-20.json"))
    assert rec.values["grid_w"] == pytest.approx(-4.74554443359375e-3)  # exporting 4.7 W
    assert rec.values["battery_soc"] == 56.0 and rec.values["solar_kwh"] == 0.0


def test_absent_fields_stay_absent_never_zero():
    payload = load("point_local_solarmonweb_2025-03-20.json")
    for field in ("battery_soc", "shunt_w", "grid_in_wh_total"):
        del payload["items"][field]
    [rec], rejected = parse_hfdata(payload)
    assert rejected == []
    assert "battery_soc" not in rec.values and "grid_import_kwh" not in rec.values
    assert rec.values["solar_w"] == 0.0  # solarinverter_w alone
    del payload["items"]["solarinverter_w"]
    [rec], _ = parse_hfdata(payload)
    assert "solar_w" not in rec.values


@pytest.mark.parametrize("change, reason", [
    ({"battery_soc": "N/A"}, "battery_soc is not numeric"),
    ({"load_w": None}, "load_w is null"),
    ({"timestamp": None}, "timestamp is null"),
])
def test_malformed_items_are_rejected_with_the_reason(change, reason):
    payload = load("point_local_solarmonweb_2020-05-30.json")
    payload["items"].update(change)
    records, [bad] = parse_hfdata(payload)
    assert records == [] and reason in bad.reason and bad.raw is payload
    del payload["items"]["timestamp"]
    records, [bad] = parse_hfdata(payload)
    assert "timestamp is missing" in bad.reason


def _response(status: int, text: str = "", headers: dict | None = None, path: str = "/login") -> httpx.Response:
    return httpx.Response(status, text=text, headers=headers or {},
                          request=httpx.Request("POST", f"https://select.live{path}"))


def test_login_answers_and_the_login_page():
    ok = _response(302, headers={"location": "/dashboard/systems", "set-cookie": "mojolicious=abc123; Path=/"})
    assert parse_login(ok) == "abc123"
    with pytest.raises(VendorAuthError, match="refused"):
        parse_login(_response(200, "<p>Bad email address or password</p>", {"content-type": "text/html"}))
    assert is_login_page(_response(401, path="/dashboard/hfdata/1"))
    assert is_login_page(_response(302, headers={"location": "/login"}, path="/dashboard/hfdata/1"))
    assert is_login_page(_response(200, '<form><input name="pwd"></form>', {"content-type": "text/html"}))
    assert not is_login_page(_response(200, "{}", {"content-type": "application/json"}))


# -- over real HTTP against the emulated portal --------------------------------------------------


class Clock:
    """One simulated clock for the portal, the adapter's session and its retry sleeps."""

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
def no_shared_sessions():
    """Sessions shared between adapters live per process: none leaks from test to test."""
    adapter_mod._SESSIONS.clear()
    yield
    adapter_mod._SESSIONS.clear()


@pytest.fixture
def portal(monkeypatch):
    """(running cloud, its portal, the shared clock) at minute 0 of an hour."""
    fake = Clock(HOUR0)
    monkeypatch.setattr(wclock, "now", fake)
    cloud = BackgroundCloud(CloudConfig(clock=fake, warm_plants=False))
    emulated = portal_mod.install(cloud.app, portal_mod.SelectronicSettings(systems={SYSTEM: PROFILE}))
    with cloud:
        yield cloud, emulated, fake


def adapter(cloud, fake, **creds) -> SelectronicAdapter:
    return SelectronicAdapter(cloud.base_url, {**CREDS, **creds}, limiter=RateLimiter.unlimited(clock=fake),
                              sleep=fake.sleep, retry_waits_s=(0, 5, 15, 30))


def polls(ad: SelectronicAdapter, fake: Clock, n: int, step_s: float = 60.0) -> list:
    async def main():
        out = []
        async with ad:
            for _ in range(n):
                out.append(await ad.fetch_latest(SYSTEM, SYDNEY))
                fake.t += step_s
        return out

    return asyncio.run(main())


def test_minute_polls_reuse_one_session_and_return_the_portals_values(portal):
    cloud, emulated, fake = portal
    got = polls(adapter(cloud, fake), fake, 25)  # minutes 0..24: one session
    stats = cloud.state.stats
    assert stats.count("selectronic", "login") == 1
    assert stats.count("selectronic", "hfdata", status=200) == 25
    for i, result in enumerate(got):
        [rec] = result.records
        t = HOUR0 + 60 * i
        items = portal_mod.items_at(emulated, SYSTEM, t)
        assert rec.ts == t == items["timestamp"]
        assert rec.values["grid_w"] == pytest.approx(-items["grid_w"] / 1000)
        assert rec.values["solar_kwh"] == pytest.approx(items["solar_wh_total"])  # kWh as sent
        assert rec.values["battery_soc"] == pytest.approx(items["battery_soc"])
    counters = [r.records[0].values["solar_kwh"] for r in got]
    assert counters == sorted(counters)  # a lifetime counter never steps back


def test_the_session_is_renewed_near_its_30_minutes_not_every_poll(portal):
    cloud, _, fake = portal
    polls(adapter(cloud, fake), fake, 45)  # minutes 0..44
    # one login at minute 0, one when the session nears its 30 minutes (renewed a minute early)
    assert cloud.state.stats.count("selectronic", "login") == 2
    assert cloud.state.stats.count("selectronic", "hfdata", status=302) == 0


def test_adapters_of_one_account_share_the_session(portal):
    cloud, _, fake = portal
    for _ in range(5):  # a job that builds a new adapter for every poll
        polls(adapter(cloud, fake), fake, 1)
    with pytest.raises(VendorAuthError):  # other credentials: their own login, refused
        polls(adapter(cloud, fake, password="another"), fake, 1)
    stats = cloud.state.stats
    assert stats.count("selectronic", "login", status=302) == 1
    assert stats.count("selectronic", "login", status=200, error="auth") == 1
    assert stats.count("selectronic", "hfdata", status=200) == 5


def test_a_session_ended_early_costs_one_relogin(portal):
    cloud, emulated, fake = portal
    ad = adapter(cloud, fake)

    async def main():
        async with ad:
            await ad.fetch_latest(SYSTEM, SYDNEY)
            emulated.expire_sessions()  # the portal forgot us at minute 5
            fake.t += 300
            return await ad.fetch_latest(SYSTEM, SYDNEY)

    result = asyncio.run(main())
    assert len(result.records) == 1
    stats = cloud.state.stats
    assert stats.count("selectronic", "login") == 2
    assert stats.count("selectronic", "hfdata", status=302) == 1  # the redirect to /login, once
    assert [c.path for c in result.calls] == ["/dashboard/hfdata/1586", "/login", "/dashboard/hfdata/1586"]


def test_the_minute_48_to_52_errors_are_retried_until_the_window_passes(portal):
    cloud, _, fake = portal
    ad = adapter(cloud, fake)

    async def main():
        async with ad:
            fake.t = HOUR0 + 40 * 60
            await ad.fetch_latest(SYSTEM, SYDNEY)  # minute 40: logged in
            fake.t = HOUR0 + 51 * 60 + 40  # 51:40, inside the window
            return await ad.fetch_latest(SYSTEM, SYDNEY)

    result = asyncio.run(main())
    [rec] = result.records
    assert rec.ts == HOUR0 + 52 * 60  # answered at 52:00, after waits of 0, 5 and 15 s
    assert fake.sleeps == [0, 5, 15]
    statuses = [c.status for c in result.calls]
    assert len(statuses) == 4 and set(statuses[:3]) <= {500, 503} and statuses[3] == 200
    assert cloud.state.stats.faults()["outage"] == 3


def test_the_outage_window_can_be_moved_or_turned_off(monkeypatch):
    fake = Clock(HOUR0 + 10 * 60)
    monkeypatch.setattr(wclock, "now", fake)
    cloud = BackgroundCloud(CloudConfig(clock=fake, warm_plants=False))
    portal_mod.install(cloud.app, portal_mod.SelectronicSettings(systems={SYSTEM: PROFILE}, outage_minutes=(10, 11)))
    with cloud:
        with httpx.Client(base_url=cloud.base_url) as http:
            assert http.post("/login", data={"email": CREDS["email"], "pwd": CREDS["password"]}).status_code in (500, 503)
            fake.t += 60
            assert http.post("/login", data={"email": CREDS["email"], "pwd": CREDS["password"]}).status_code == 302


def test_the_504s_after_sydney_midnight_exhaust_the_retries_and_say_so(monkeypatch):
    midnight = 1790085600  # 2026-09-23T00:00 in Sydney (14:00Z), minute 0 of an hour
    fake = Clock(midnight + 5 * 60)
    monkeypatch.setattr(wclock, "now", fake)
    cloud = BackgroundCloud(CloudConfig(clock=fake, warm_plants=False))
    portal_mod.install(cloud.app, portal_mod.SelectronicSettings(systems={SYSTEM: PROFILE}, midnight_504_minutes=20))
    with cloud:
        ad = adapter(cloud, fake)

        async def main():
            async with ad:
                await ad.fetch_latest(SYSTEM, SYDNEY)

        with pytest.raises(VendorUnavailable, match="HTTP 504") as err:
            asyncio.run(main())
    assert [c.status for c in err.value.calls] == [504] * 5  # the login, tried five times
    assert fake.sleeps == [0, 5, 15, 30]


def test_a_malformed_answer_is_rejected_with_its_reason_not_fatal(monkeypatch):
    fake = Clock(HOUR0)
    monkeypatch.setattr(wclock, "now", fake)
    cloud = BackgroundCloud(CloudConfig(clock=fake, warm_plants=False, scripted_faults=[None, "malformed", None]))
    portal_mod.install(cloud.app, portal_mod.SelectronicSettings(systems={SYSTEM: PROFILE}))
    with cloud:
        bad, good = polls(adapter(cloud, fake), fake, 2)
    assert bad.records == [] and len(bad.rejected) == 1
    assert "timestamp is missing" in bad.rejected[0].reason  # HOUR0 is even: the timestamp went
    assert len(good.records) == 1


def test_wrong_password_is_refused_clearly_and_no_secret_shows(portal):
    cloud, _, fake = portal
    ad = adapter(cloud, fake, password="not-the-password")

    async def main():
        async with ad:
            await ad.test_connection()

    with pytest.raises(VendorAuthError) as err:
        asyncio.run(main())
    assert "refused" in str(err.value) and "not-the-password" not in str(err.value)
    assert cloud.state.stats.errors()["auth"] == 1
    assert [c.status for c in err.value.calls] == [200]  # not retried


def test_history_has_only_the_present(portal):
    cloud, _, fake = portal
    ad = adapter(cloud, fake)

    async def main():
        async with ad:
            past = await ad.fetch_history(SYSTEM, HOUR0 - 86400, HOUR0 - 3600, SYDNEY)
            now = await ad.fetch_history(SYSTEM, HOUR0 - 3600, HOUR0 + 60, SYDNEY)
            return past, now

    past, now = asyncio.run(main())
    assert past.records == [] and past.calls == []  # nothing to backfill: no call at all
    assert [r.ts for r in now.records] == [HOUR0]


def test_add_account_validates_selectronic_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("WATTLINE_DATA_DIR", str(tmp_path / "data"))
    for var in ("WATTLINE_MAIN_URL", "WATTLINE_TELEMETRY_URL"):
        monkeypatch.delenv(var, raising=False)
    from wattline.cli import app

    assert get_adapter_class("selectronic") is SelectronicAdapter
    res = CliRunner().invoke(app, ["vendors", "add-account", "home", "--vendor", "selectronic",
                                   "--credential", "email=a@b.c", "--credential", "pwd=secret1"])
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and "unknown key 'pwd'" in text and "missing key 'password'" in text
    assert "secret1" not in text
    res = CliRunner().invoke(app, ["vendors", "add-account", "home", "--vendor", "selectronic",
                                   "--credential", "email=a@b.c", "--credential", "password=secret1"])
    assert res.exit_code == 0, res.output
    assert "secret1" not in res.output


def test_polls_through_the_pipeline_put_the_counters_energy_in_the_ledger(portal, dbs, pipeline, tmp_path):
    from helpers import ledger_rows

    from wattline import provisioning
    from wattline.config import Settings
    from wattline.sources.vendors.normalize import records_to_batch
    from wattline.store.series_resolver import RegistrySeriesResolver

    cloud, emulated, fake = portal
    with dbs.main.begin() as conn:
        provisioning.add_vendor_account(conn, Settings(data_dir=tmp_path / "data"), "selectronic", "sel", CREDS,
                                        rate_limits=provisioning.UNLIMITED)
        pid = provisioning.add_vendor_plant(conn, "SP PRO", "selectronic", SYSTEM, SYDNEY)
    got = polls(adapter(cloud, fake), fake, 10)
    records = [r for result in got for r in result.records]
    resolver = RegistrySeriesResolver(dbs.main_reader)
    pipeline.ingest(records_to_batch(resolver, pid, records, "vendor:selectronic"), now=HOUR0 + 600)
    first = portal_mod.items_at(emulated, SYSTEM, HOUR0)
    last = portal_mod.items_at(emulated, SYSTEM, HOUR0 + 540)
    for key, field in (("load_kwh", "load_wh_total"), ("grid_import_kwh", "grid_in_wh_total")):
        rows = ledger_rows(dbs, resolver.resolve(pid, key).series_id)
        assert len(rows) == 9  # one delta between consecutive minute readings
        assert sum(r.delta_milli_wh for r in rows) / 1e6 == pytest.approx(last[field] - first[field], abs=1e-5)

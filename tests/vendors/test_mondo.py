"""Mondo Power: mapping against the real live-usage capture (and the synthetic shapes),
then the adapter over real HTTP against the emulation: the scripted OIDC login with
PKCE, token expiry and refresh, a refused login, the 403 for a point id, faults, and
malformed records rejected with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wattline.simulator.vendor_cloud import mondo as emu
from wattline.simulator.vendor_cloud.home_flow import home_flow
from wattline.sources.vendors import RateLimiter, VendorAuthError, VendorRequestError, VendorUnavailable
from wattline.sources.vendors.mondo import (
    MondoAdapter,
    parse_live_usage,
    parse_subcircuit,
    parse_token_response,
    pkce_pair,
    poll_record,
    verification_token,
)

FIXTURES = Path(__file__).parent / "fixtures" / "mondo"
CREDS = {"email": "demo@wattline.local", "password": "wattline-demo"}
GROUP = "grp-1001"
TZ = "Australia/Sydney"


def load(name: str):
    return json.loads((FIXTURES / name).read_text())


# -- mapping ---------------------------------------------------------------------------------


def test_the_real_live_usage_capture_maps_to_kw_and_soc_at_its_recorded_instant():
    ts, values, problems = parse_live_usage(load("liveusage_widget_2026-09-11.json"))
    assert problems == []
    assert ts == 1789098600  # 2026-09-11T03:50:00Z, lastRecordedUtc
    # kW as sent; the generator is Offline: its 0 is a placeholder, not a reading
    # Mondo's battery + is charging: stored as Wattline's + discharging, so charging 7.52 kW is -7.52
    assert values == {"load_w": 4.35, "solar_w": 9.58, "battery_w": -7.52, "grid_w": 2.3, "battery_soc": 74.0}
    # the signs the capture implies: solar + grid import + battery discharge = demand (to its 0.01 kW rounding)
    assert values["solar_w"] + values["grid_w"] + values["battery_w"] == pytest.approx(values["load_w"], abs=0.011)


def test_subcircuit_rows_in_w_and_wh_become_kw_and_kwh_counters():
    values, rejected = parse_subcircuit(load("subcircuit_SHAPE_SYNTHETIC.json"))
    assert rejected == []
    # the synthetic rows are all zero: a measured zero is a reading, not "no value"
    assert values == {f"{k}_{s}": 0.0 for k in ("solar", "battery", "grid", "other") for s in ("kwh", "circuit_w")}
    rows = {"rows": [
        {"monitoringPointName": "PV 1", "loadType": "PvInverter", "energyNowW": 2500, "totalEnergyWh": 1_234_567},
        {"monitoringPointName": "PV 2", "loadType": "HybridPv", "energyNowW": 500, "totalEnergyWh": 10_000},
        {"monitoringPointName": "Grid", "loadType": "GateMeter", "energyNowW": -800, "totalEnergyWh": 42},
    ]}
    values, rejected = parse_subcircuit(rows)
    assert values == {"solar_kwh": 1244.567, "solar_circuit_w": 3.0, "grid_kwh": 0.042, "grid_circuit_w": -0.8}


def test_the_synthetic_token_shape_is_read():
    assert parse_token_response(load("token_response_SHAPE_SYNTHETIC.json")) == ("<JWT>", 3600.0, None)
    with pytest.raises(VendorAuthError):
        parse_token_response({"error": "invalid_grant"})
    with pytest.raises(VendorUnavailable):
        parse_token_response({"expires_in": 3600})


def test_malformed_records_are_rejected_with_a_reason():
    live = load("liveusage_widget_2026-09-11.json")
    bad = json.loads(json.dumps(live))
    bad["liveUsageData"]["battery"]["stateOfCharge"] = "n/a"
    records, rejected = poll_record(bad, None)
    assert records == [] and "battery.stateOfCharge is not numeric" in rejected[0].reason
    assert rejected[0].raw["liveusage"] == bad
    zero = json.loads(json.dumps(live))
    zero["liveUsageData"]["battery"]["stateOfCharge"] = 0  # SoC 0 is a reading
    (rec,), _ = poll_record(zero, None)
    assert rec.values["battery_soc"] == 0.0
    no_time = {k: v for k, v in live.items() if k != "lastRecordedUtc"}
    assert "lastRecordedUtc is missing" in poll_record(no_time, None)[1][0].reason
    # one bad subcircuit row: rejected, and its kind left out (a partial counter sum would look like a reset)
    sub = {"rows": [
        {"monitoringPointName": "PV 1", "loadType": "PvInverter", "energyNowW": 1, "totalEnergyWh": 100},
        {"monitoringPointName": "PV 2", "loadType": "PvInverter", "energyNowW": 1, "totalEnergyWh": "n/a"},
        {"monitoringPointName": "Grid", "loadType": "GateMeter", "energyNowW": 1, "totalEnergyWh": 5},
        {"monitoringPointName": "Spa", "loadType": "Jacuzzi", "energyNowW": 1, "totalEnergyWh": 5},
    ]}
    (rec,), rejected = poll_record(live, sub)
    assert "solar_kwh" not in rec.values and rec.values["grid_kwh"] == 0.005
    assert [r.reason for r in rejected] == ["PV 2: totalEnergyWh is not numeric: 'n/a'",
                                            "unknown loadType 'Jacuzzi'"]


def test_the_login_form_token_is_found_in_either_attribute_order():
    page = '<form><input type="hidden" value="CfDJ8abc" name="__RequestVerificationToken"></form>'
    assert verification_token(page) == "CfDJ8abc"
    assert verification_token('<input name="__RequestVerificationToken" type="hidden" value="x-1" />') == "x-1"
    with pytest.raises(VendorUnavailable):
        verification_token("<html>maintenance</html>")


def test_pkce_challenge_is_s256_of_the_verifier_and_the_emulation_checks_it(kit):
    import base64
    import hashlib

    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    assert challenge == base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = type("S", (), {"config": kit.make_config()})()
    cloud = emu.MondoCloud(emu.MondoSettings(), state)
    code = cloud.issue_code("demo@wattline.local", challenge)
    assert cloud.redeem_code(code, verifier + "x") is None  # wrong verifier
    assert cloud.redeem_code(code, verifier) is None  # and the code is spent
    assert cloud.redeem_code(cloud.issue_code("a", challenge), verifier) == "a"


# -- over HTTP against the emulation ------------------------------------------------------------


class Clock:
    """The emulated cloud's clock, moved by the test."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def adapter(kit, running, creds=None, **kw) -> MondoAdapter:
    clock = kit.FakeClock(0.0)
    kw.setdefault("retry_waits_s", kit.FAST_WAITS)
    return MondoAdapter(running.base_url, creds or CREDS, limiter=RateLimiter.unlimited(), sleep=clock.sleep, **kw)


def calls(running, endpoint: str, **match) -> int:
    return running.state.stats.count("mondo", endpoint, **match)


def test_login_then_live_usage_and_subcircuits_equal_the_emulated_home(kit, start_cloud):
    running = start_cloud()
    ad = adapter(kit, running)

    async def main():
        async with ad:
            return await ad.fetch_latest(GROUP, TZ), await ad.list_plants()

    got, plants = kit.run(main())
    assert [(c.method, c.path, c.status) for c in got.calls] == [
        ("GET", "/Account/Login", 200), ("POST", "/Account/Login", 302), ("GET", "/connect/authorize", 302),
        ("POST", "/connect/token", 200), ("GET", f"/liveusage/widget/{GROUP}", 200), ("GET", f"/subcircuit/{GROUP}", 200)]
    (rec,) = got.records
    assert rec.ts == kit.NOW  # on the minute: lastRecordedUtc
    f = home_flow(GROUP, emu.MondoSettings().groups[GROUP], kit.NOW)
    assert rec.values["solar_w"] == round(f.solar_kw, 2) and rec.values["load_w"] == round(f.load_kw, 2)
    assert rec.values["battery_soc"] == round(f.soc_pct)
    assert rec.values["solar_kwh"] == round(f.solar_kwh * 1000) / 1000  # Wh on the wire
    assert rec.values["grid_kwh"] == round(f.grid_import_kwh * 1000) / 1000
    assert [p.vendor_plant_id for p in plants] == [GROUP]
    assert CREDS["password"] not in repr(ad) + json.dumps([c.__dict__ for c in got.calls])


def test_an_expired_token_is_refreshed_not_logged_in_again(kit, start_cloud):
    clock = Clock(kit.NOW)
    running = start_cloud(clock=clock)
    ad = adapter(kit, running)

    async def poll(n: int):
        async with ad:
            out = []
            for _ in range(n):
                out.append(await ad.fetch_latest(GROUP, TZ))
                clock.t += 2 * 3600  # past the emulated token's hour: the API answers 401
            return out

    results = kit.run(poll(3))
    assert all(len(r.records) == 1 for r in results)
    assert [r.records[0].ts for r in results] == [kit.NOW, kit.NOW + 7200, kit.NOW + 14400]
    assert calls(running, "login", status=302) == 1  # one browser login ...
    assert calls(running, "token", window=("refresh_token", "")) == 2  # ... then refreshes
    assert calls(running, "liveusage", status=401) == 2  # each seen as a refused token first
    # every refresh token is spent once (rotation): a stale one is refused
    assert calls(running, "token", status=400) == 0


def test_a_revoked_refresh_token_falls_back_to_the_full_login(kit, start_cloud):
    running = start_cloud()
    ad = adapter(kit, running)

    async def main():
        async with ad:
            await ad.fetch_latest(GROUP, TZ)
            mondo = running.app.state.mondo
            mondo.expire_access_tokens()
            mondo.expire_refresh_tokens()
            return await ad.fetch_latest(GROUP, TZ)

    assert len(kit.run(main()).records) == 1
    assert calls(running, "token", status=400, error="token") == 1  # the refresh was refused
    assert calls(running, "login", status=302) == 2


def test_a_short_lived_token_is_renewed_before_it_expires(kit, start_cloud):
    running = start_cloud(token_ttl_s=30.0)  # less than the adapter's minute of margin

    async def main():
        async with adapter(kit, running) as ad:
            for _ in range(2):
                await ad.fetch_latest(GROUP, TZ)

    kit.run(main())
    assert calls(running, "liveusage", status=401) == 0  # renewed up front, never refused
    assert calls(running, "subcircuit", status=401) == 0
    # its life is shorter than the minute of margin: every later call renews it first
    assert calls(running, "login", status=302) == 1
    assert calls(running, "token", window=("refresh_token", "")) == 3


def test_a_wrong_password_is_refused_without_leaking_it(kit, start_cloud):
    running = start_cloud()
    ad = adapter(kit, running, creds={**CREDS, "password": "hunter2"})

    async def main():
        async with ad:
            await ad.test_connection()

    with pytest.raises(VendorAuthError, match="login refused") as err:
        kit.run(main())
    assert "hunter2" not in str(err.value) and "hunter2" not in json.dumps([c.__dict__ for c in err.value.calls])
    assert calls(running, "login", error="auth") == 1 and calls(running, "authorize") == 0


def test_a_point_id_where_a_group_belongs_is_a_403_request_error(kit, start_cloud):
    running = start_cloud()

    async def main():
        async with adapter(kit, running) as ad:
            await ad.fetch_latest(f"pt-{GROUP}-1", TZ)

    with pytest.raises(VendorRequestError, match="403"):
        kit.run(main())
    assert calls(running, "liveusage", status=403) == 1


def test_faults_are_retried_and_a_429_waits_its_retry_after(kit, start_cloud):
    # the login page 500s, the token endpoint 429s (Retry-After 2), live usage times out once
    running = start_cloud(scripted_faults=["500", None, None, None, "429", "slow"], retry_after_s=2,
                          slow_delay_s=0.5)
    clock = kit.FakeClock(0.0)
    ad = MondoAdapter(running.base_url, CREDS, limiter=RateLimiter.unlimited(clock=clock, sleep=clock.sleep),
                      sleep=clock.sleep, retry_waits_s=kit.FAST_WAITS, timeout_s=0.25)

    async def main():
        async with ad:
            return await ad.fetch_latest(GROUP, TZ)

    got = kit.run(main())
    assert len(got.records) == 1
    assert any(s >= 2 for s in clock.sleeps)  # the Retry-After was honoured
    assert {"500": 1, "429": 1}.items() <= running.state.stats.faults().items()
    assert [c.status for c in got.calls if c.error] == [500, 429, None]  # the last one timed out
    assert "timeout" in [c.error for c in got.calls if c.error][-1]


def test_malformed_answers_over_http_are_rejected_with_the_reason(kit, start_cloud):
    # calls: 4 login steps, then live usage (SoC "n/a"), then subcircuits (1-3 rows damaged)
    running = start_cloud(scripted_faults=[None] * 4 + ["malformed"])

    async def main():
        async with adapter(kit, running) as ad:
            first = await ad.fetch_latest(GROUP, TZ)
            running.state.faults.script(None, "malformed")
            return first, await ad.fetch_latest(GROUP, TZ)

    first, second = kit.run(main())
    assert first.records == [] and "battery.stateOfCharge is not numeric" in first.rejected[0].reason
    (rec,) = second.records
    assert second.rejected and all(r.reason for r in second.rejected)
    damaged = {r.raw["loadType"] for r in second.rejected}
    kinds = {"PvInverter": "solar", "HybridBattery": "battery", "GateMeter": "grid", "Other": "other"}
    assert all(f"{kinds[t]}_kwh" not in rec.values for t in damaged)
    assert rec.values["battery_soc"] >= 0


def test_the_clouds_own_rate_limit_answers_429_and_the_adapter_waits_it_out(kit, start_cloud):
    clock = Clock(kit.NOW + 30)  # half way through a minute: Retry-After is 30 s

    async def sleep(seconds: float) -> None:
        clock.t += seconds  # the emulated cloud's time passes while the adapter waits

    running = start_cloud(clock=clock, rate_limit_per_minute=4)
    ad = MondoAdapter(running.base_url, CREDS, limiter=RateLimiter.unlimited(clock=clock, sleep=sleep), sleep=sleep,
                      retry_waits_s=kit.FAST_WAITS)

    async def main():
        async with ad:
            return [await ad.fetch_latest(GROUP, TZ) for _ in range(3)]  # 6 API calls, 4 allowed a minute

    results = kit.run(main())
    assert all(len(r.records) == 1 for r in results)
    assert calls(running, "liveusage", status=429) + calls(running, "subcircuit", status=429) == 1
    assert results[-1].records[0].ts == kit.NOW + 60  # the next minute's record, after the wait


def test_a_sync_through_the_jobs_stores_the_poll_and_its_latest_values(kit, start_cloud, dbs, tmp_path):
    import asyncio

    from world import make_ctx
    from wattline import provisioning
    from wattline.jobs.backfill import backfill_plant
    from wattline.store.series_resolver import load_series

    running = start_cloud()
    ctx = make_ctx(dbs, tmp_path)
    with dbs.main.begin() as conn:
        account = provisioning.add_vendor_account(conn, ctx.settings, "mondo", "mondo", CREDS,
                                                  base_url=running.base_url, rate_limits=dict(provisioning.UNLIMITED))
        pid = provisioning.add_vendor_plant(conn, "Mondo home", "mondo", GROUP, TZ, vendor_account_id=account,
                                            start_operating_time=kit.NOW - 3600)
    result = asyncio.run(backfill_plant(ctx, pid, now=kit.NOW))
    assert result.success and result.recordsSynced == 1  # Mondo has no history: the current record
    series = {s.point_key: s.series_id for s in load_series(dbs.main_reader, [pid])}
    latest = ctx.latest_values.read(pid, list(series.values()))
    f = home_flow(GROUP, emu.MondoSettings().groups[GROUP], kit.NOW)
    assert latest[series["solar_w"]].value == round(f.solar_kw, 2) and latest[series["solar_w"]].ts == kit.NOW
    assert latest[series["battery_soc"]].value == round(f.soc_pct)
    assert latest[series["solar_kwh"]].value == round(f.solar_kwh * 1000) / 1000


def test_stale_live_usage_repeats_its_recorded_instant(kit, start_cloud):
    clock = Clock(kit.NOW + 5)
    running = start_cloud(clock=clock)

    async def main():
        async with adapter(kit, running) as ad:
            first = await ad.fetch_latest(GROUP, TZ)
            clock.t += 40  # the same platform minute: the same record again
            second = await ad.fetch_latest(GROUP, TZ)
            clock.t += 60
            third = await ad.fetch_latest(GROUP, TZ)
            return first.records[0], second.records[0], third.records[0]

    first, second, third = kit.run(main())
    assert first.ts == second.ts == kit.NOW and first.values == second.values  # a repeat, not a new sample
    assert third.ts == kit.NOW + 60

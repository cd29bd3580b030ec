"""Enphase: the local gateway's real captures, the v4 telemetry mapping, and over real
HTTP against the emulation: the OAuth round trip through Wattline's two routes, token
refresh on expiry and on 401 (token calls counted), the free plan's 10 calls per
minute (emulation calls counted) and 1,000 per month, 429 honoured, resumable backfill."""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn

from world import make_ctx
from wattline import clock as wall_clock
from wattline import provisioning
from wattline.api.app import create_app
from wattline.security import tokens
from wattline.security.crypto import decrypt_credentials
from wattline.simulator.vendor_cloud import BackgroundCloud, CloudConfig, plant_series
from wattline.simulator.vendor_cloud import enphase as emu
from wattline.sources.vendors import QuotaExhausted, RateLimiter, VendorAuthError, get_adapter_class
from wattline.sources.vendors.enphase import EnphaseAdapter, parse_envoy_production, parse_production_micro
from wattline.sources.vendors.enphase.mapping import GRID_W, LOAD_W, SOLAR_KWH, SOLAR_TOTAL_KWH, SOLAR_W
from wattline.sources.vendors.parsing import BadValue
from wattline.store import vendor_accounts_repo

FIXTURES = Path(__file__).parent / "fixtures" / "enphase"
SYSTEM = emu.DEMO_SYSTEM
APP = {"client_id": emu.DEMO_CLIENT_ID, "client_secret": emu.DEMO_CLIENT_SECRET, "api_key": emu.DEMO_API_KEY}


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


# -- the real captures (local IQ Gateway) -------------------------------------------------------


def test_envoy_metered_production_json_uses_the_ct_meter():
    rec = parse_envoy_production(fixture("production.json_fw8.2.4286_metered_3ct_battery.json"))
    assert rec.ts == 1722967003  # the eim reading, not the inverters' older one (1722966883)
    assert rec.values == pytest.approx({SOLAR_W: 7.123097, SOLAR_TOTAL_KWH: 13431.328665,
                                        LOAD_W: 8.88472, GRID_W: 1.761624}, rel=1e-12)
    # the gateway's own summary of the same moment agrees (W and Wh, not kW/kWh)
    summary = fixture("api_v1_production_fw8.2.4286.json")
    assert summary["wattHoursLifetime"] / 1000 == pytest.approx(rec.values[SOLAR_TOTAL_KWH], rel=1e-4)
    assert summary["wattsNow"] / 1000 == pytest.approx(rec.values[SOLAR_W], rel=0.01)


def test_envoy_unmetered_falls_back_to_the_inverters_and_ignores_empty_storage():
    rec = parse_envoy_production(fixture("production.json_fw7.6.175_unmetered.json"))
    assert rec.ts == 1691416513
    assert rec.values == {SOLAR_W: 5.739, SOLAR_TOTAL_KWH: 174.174}  # no consumption CTs: no load, no grid
    empty = copy.deepcopy(fixture("production.json_fw7.6.175_unmetered.json"))
    empty["production"][0]["readingTime"] = 0  # "no data", not a reading at 1970
    with pytest.raises(BadValue, match="readingTime 0"):
        parse_envoy_production(empty)


def test_production_micro_mapping_and_malformed_intervals():
    payload = {"system_id": 2875, "granularity": "day", "items": "intervals", "intervals": [
        {"end_at": 1730419200, "devices_reporting": 28, "powr": 1440, "enwh": 360},
        {"end_at": 1730420100, "devices_reporting": 28, "powr": "N/A", "enwh": 361},
        {"end_at": 1730421000, "devices_reporting": 28, "powr": 1448},
        {"end_at": 1730421900.5, "powr": 1, "enwh": 1},
        {"end_at": 1730422800, "powr": 0, "enwh": -3},
    ]}
    records, rejected = parse_production_micro(payload)
    assert [(r.ts, r.values) for r in records] == [(1730419200, {SOLAR_W: 1.44, SOLAR_KWH: 0.36})]
    assert [r.reason for r in rejected] == ["powr is not numeric: 'N/A'", "enwh is missing",
                                           "end_at is not whole epoch seconds: 1730421900.5",
                                           "enwh is negative: -3"]


# -- over real HTTP ------------------------------------------------------------------------------


class Clock:
    def __init__(self, t: float) -> None:
        self.t = float(t)
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


@pytest.fixture
def cloud(kit):
    """The emulated Enphase on a simulated clock (also the adapter limiter's)."""
    c = Clock(kit.NOW)
    with BackgroundCloud(kit.make_config(clock=c, history_source="clear_sky", warm_plants=False)) as running:
        yield running, c


def authorized(kit, running, clock, **kw) -> tuple[EnphaseAdapter, dict]:
    """An adapter holding a fresh token pair (the code exchange done directly)."""
    ec = running.app.state.enphase
    code = ec.oauth.issue_code(emu.DEMO_CLIENT_ID, "http://127.0.0.1/cb", clock.t, 600)
    stored: dict = {}
    kw.setdefault("limiter", RateLimiter.from_limits(EnphaseAdapter.limits, clock=clock, sleep=clock.sleep))
    ad = EnphaseAdapter(running.base_url, APP, sleep=clock.sleep, retry_waits_s=kit.FAST_WAITS,
                        on_credentials=lambda c: stored.update(c.to_storage()), **kw)

    async def main():
        await ad.exchange_code(code, "http://127.0.0.1/cb")

    kit.run(main())
    return ad, stored


def expected(kit, start: int, end: int) -> dict[int, dict[str, float]]:
    profile = emu.EnphaseSettings().systems[SYSTEM]
    s = plant_series(SYSTEM, profile, start - 900, end, kit.NOW, "clear_sky")
    at = dict(zip(s.ts.tolist(), s.energy_total_kwh.tolist()))
    out = {}
    for t in range(start, end, 900):
        if t in at and t - 900 in at:
            enwh = int(round((at[t] - at[t - 900]) * 1000))
            out[t] = {SOLAR_W: int(round(enwh * 4)) * 1e-3, SOLAR_KWH: enwh * 1e-3}
    return out


def test_history_a_week_per_call_matches_the_simulation(kit, cloud):
    running, clock = cloud
    assert get_adapter_class("enphase") is EnphaseAdapter
    ad, _ = authorized(kit, running, clock)
    start, end = kit.NOW - 20 * kit.DAY, kit.NOW

    async def main():
        async with ad:
            return await ad.fetch_history(SYSTEM, start, end, "Australia/Sydney")

    result = kit.run(main())
    assert not result.rejected
    want = expected(kit, start, end)
    assert {r.ts: r.values for r in result.records} == want and len(want) == 20 * 96
    assert running.state.stats.count("enphase", "production_micro", status=200) == 3  # 20 days in 3 calls
    assert max(r.values[SOLAR_W] for r in result.records) > 4.0  # an 8.2 kW system in Sydney's spring


def test_token_refreshed_on_expiry_and_on_401_rotating_the_refresh_token(kit, cloud, set_clock):
    running, clock = cloud
    set_clock(kit.NOW)  # the adapter reads token expiry from Wattline's clock
    ad, stored = authorized(kit, running, clock)
    stats = running.state.stats
    assert stats.count("enphase", "token", status=200) == 1
    first_refresh = stored["refresh_token"]

    async def latest():
        async with ad:
            return await ad.fetch_latest(SYSTEM, "UTC", now_ts=int(clock.t))

    assert kit.run(latest()).records
    assert stats.count("enphase", "token") == 1  # a valid token is reused

    # a day later the access token has expired: refreshed first (a minute early), one token call
    clock.t += 86400
    set_clock(clock.t)
    assert kit.run(latest()).records
    assert stats.count("enphase", "token", status=200) == 2 and stats.count("enphase", status=401) == 0
    assert stored["refresh_token"] != first_refresh  # rotated, and handed over to be stored

    # Enphase revokes the access token early: the 401 is answered by one refresh and a retry
    running.app.state.enphase.oauth.expire_access_tokens()
    assert kit.run(latest()).records
    assert stats.count("enphase", "token", status=200) == 3
    assert stats.count("enphase", "production_micro", status=401) == 1

    # the spent refresh token no longer works
    old = EnphaseAdapter(running.base_url, {**APP, "refresh_token": first_refresh}, limiter=RateLimiter.unlimited(),
                         retry_waits_s=kit.FAST_WAITS)

    async def refresh_with_old():
        async with old:
            await old.fetch_latest(SYSTEM, "UTC", now_ts=int(clock.t))

    with pytest.raises(VendorAuthError):
        kit.run(refresh_with_old())


def test_a_refresh_its_caller_gave_up_on_still_keeps_the_rotated_token(kit, cloud, set_clock):
    """A poll's timeout fell while the token endpoint, having already spent the refresh
    token, had not answered yet: the refresh completes anyway, the rotated token is
    handed over to be stored, and the next fetch uses it (before: it presented the spent
    token and the account was locked out until the owner authorised again)."""
    import asyncio

    running, clock = cloud
    set_clock(kit.NOW)
    ad, stored = authorized(kit, running, clock)
    stats, ec = running.state.stats, running.app.state.enphase
    spent = stored["refresh_token"]
    clock.t += 86400  # the access token has expired: the next fetch refreshes first
    set_clock(clock.t)
    ec.settings.token_answer_delay_s = 0.6

    async def main():
        async with ad:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):  # the poll gives up mid-refresh
                    await ad.fetch_latest(SYSTEM, "UTC", now_ts=int(clock.t))
            assert stored["refresh_token"] == spent  # not answered yet
            # a fetch starting meanwhile waits for that refresh instead of spending the old token again
            during = await ad.fetch_latest(SYSTEM, "UTC", now_ts=int(clock.t))
            ec.settings.token_answer_delay_s = 0.0
            after = await ad.fetch_latest(SYSTEM, "UTC", now_ts=int(clock.t))
            return during, after

    during, after = kit.run(main())
    assert during.records and after.records
    assert stored["refresh_token"] != spent  # the rotated one, stored
    assert stats.count("enphase", "token", status=200) == 2  # the code exchange and one refresh
    assert stats.count("enphase", "token", status=401) == 0  # the spent token never presented again


def test_fetches_waiting_for_a_refused_refresh_share_its_refusal(kit, cloud, set_clock):
    """Twenty-five systems of one account poll at once while its refresh token is no
    longer valid: one token call, refused, and every fetch that waited for it fails with
    that refusal (before: each waiting fetch tried the spent token again in turn, and
    the last ones ran past the poll's timeout instead of failing as refused)."""
    import asyncio

    running, clock = cloud
    set_clock(kit.NOW)
    ec = running.app.state.enphase
    stats = running.state.stats
    ad = EnphaseAdapter(running.base_url, {**APP, "refresh_token": "spent-or-revoked"},
                        limiter=RateLimiter.unlimited(), retry_waits_s=kit.FAST_WAITS)
    ec.settings.token_answer_delay_s = 0.2  # the refusal takes a while: the others queue behind it

    async def main():
        async with ad:
            return await asyncio.gather(*(ad.fetch_latest(SYSTEM, "UTC", now_ts=int(clock.t)) for _ in range(25)),
                                        return_exceptions=True)

    got = kit.run(main())
    assert len(got) == 25 and all(isinstance(g, VendorAuthError) for g in got), got
    assert stats.count("enphase", "token", status=401) == 1  # asked once, not once per fetch
    assert stats.count("enphase", "production_micro") == 0
    # a fetch after the refusal tries afresh (the owner may have authorised again)
    async def one():
        async with ad:
            await ad.fetch_latest(SYSTEM, "UTC", now_ts=int(clock.t))

    with pytest.raises(VendorAuthError):
        kit.run(one())
    assert stats.count("enphase", "token", status=401) == 2


def test_closing_the_adapter_waits_for_a_refresh_left_in_flight(kit, cloud, set_clock):
    """The tick ends (its session closes) right after a poll timed out mid-refresh: the
    close lets the refresh finish, so its rotated token is not dropped with the loop."""
    import asyncio

    running, clock = cloud
    set_clock(kit.NOW)
    ad, stored = authorized(kit, running, clock)
    spent = stored["refresh_token"]
    clock.t += 86400
    set_clock(clock.t)
    running.app.state.enphase.settings.token_answer_delay_s = 0.5

    async def main():
        try:
            async with asyncio.timeout(0.1):
                await ad.fetch_latest(SYSTEM, "UTC", now_ts=int(clock.t))
        except TimeoutError:
            pass
        await ad.aclose()

    kit.run(main())
    assert stored["refresh_token"] != spent
    assert running.state.stats.count("enphase", "token", status=401) == 0


def test_ten_calls_per_minute_never_exceeded(kit, cloud):
    running, clock = cloud
    ad, _ = authorized(kit, running, clock)

    async def main():
        async with ad:
            return [await ad.fetch_latest(SYSTEM, "UTC", now_ts=int(clock.t)) for _ in range(35)]

    got = kit.run(main())
    assert all(r.records for r in got)
    calls = [c for c in running.state.stats.calls if c.endpoint == "production_micro"]
    assert len(calls) == 35 and all(c.status == 200 for c in calls)  # the plan never refused one
    assert running.state.stats.count("enphase", status=429) == 0
    assert clock.t - kit.NOW >= 3 * 60  # 35 calls at 10 a minute


def test_429_retry_after_honoured(kit, cloud):
    running, clock = cloud
    ad, _ = authorized(kit, running, clock, limiter=RateLimiter.unlimited(clock=clock, sleep=clock.sleep))

    async def main():
        async with ad:
            return [await ad.fetch_latest(SYSTEM, "UTC", now_ts=int(clock.t)) for _ in range(12)]

    got = kit.run(main())
    assert all(r.records for r in got)
    stats = running.state.stats
    assert stats.count("enphase", "production_micro", status=429) == 1  # the 11th call of the minute
    assert stats.count("enphase", "production_micro", status=200) == 12
    assert clock.slept and clock.slept[0] >= 60 - kit.NOW % 60  # waited for the next minute


def test_monthly_quota_then_backfill_resumes_where_it_stopped(kit, cloud):
    running, clock = cloud
    limiter = RateLimiter.from_limits(EnphaseAdapter.limits, clock=clock, sleep=clock.sleep)
    limiter.set_usage(0, 998)  # 998 of this month's 1,000 calls already used (from the sync logs)
    running.app.state.enphase.settings.refresh_ttl_s = 60 * 86400  # outlives the wait for next month
    ad, _ = authorized(kit, running, clock, limiter=limiter)
    start, end = kit.NOW - 30 * kit.DAY, kit.NOW

    async def backfill(a: int):
        async with ad:
            return await ad.fetch_history(SYSTEM, a, end, "UTC")

    with pytest.raises(QuotaExhausted) as stopped:
        kit.run(backfill(start))
    assert running.state.stats.count("enphase", "production_micro") == 2  # the 999th and 1,000th only
    assert stopped.value.resets_at_ts == 1733011200  # 2024-12-01T00:00:00Z
    partial = stopped.value.partial.records
    assert partial and partial[-1].ts < end

    # next month: resume right after the last record kept
    clock.t = stopped.value.resets_at_ts
    rest = kit.run(backfill(partial[-1].ts + 1))
    got = {r.ts: r.values for r in partial + rest.records}
    assert got == expected(kit, start, end)


def test_the_emulation_answers_429_at_the_monthly_limit(kit, cloud):
    running, clock = cloud
    ad, _ = authorized(kit, running, clock, limiter=RateLimiter.unlimited(clock=clock, sleep=clock.sleep))
    running.app.state.enphase.plan.set_month_usage(emu.DEMO_API_KEY, clock.t, 1000)
    with httpx.Client() as client:
        r = client.get(f"{running.base_url}/api/v4/systems/{SYSTEM}/telemetry/production_micro",
                       params={"key": emu.DEMO_API_KEY}, headers={"Authorization": f"Bearer {ad._token}"})
    assert r.status_code == 429
    assert r.json() == {"message": "Too Many Requests", "details": "Usage limit exceeded for plan Watt", "code": 429}
    assert int(r.headers["retry-after"]) == 1733011200 - int(clock.t)  # to the first of next month


# -- the OAuth round trip through Wattline's routes ------------------------------------------------


class Server:
    def __init__(self, app):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def wattline(sqlite_dbs, tmp_path):
    """Wattline's API and the emulated Enphase (on Wattline's clock), an admin token and
    an Enphase account that has no tokens yet."""
    ctx = make_ctx(sqlite_dbs, tmp_path)
    with BackgroundCloud(CloudConfig(clock=wall_clock.now, history_source="clear_sky",
                                     warm_plants=False)) as running:
        with ctx.dbs.main.begin() as conn:
            account = provisioning.add_vendor_account(conn, ctx.settings, "enphase", "house", APP,
                                                      base_url=running.base_url)
            admin = tokens.create_token(conn, "admin token", "admin")
            other = tokens.create_token(conn, "other admin", "admin")
        with Server(create_app(ctx)) as server:
            yield server.url, running, ctx, account, admin, other


def _creds(ctx, account) -> dict:
    with ctx.dbs.main.connect() as conn:
        row = vendor_accounts_repo.get(conn, account)
    return decrypt_credentials(ctx.settings.encryption_key, row["credentials_encrypted"])


def test_oauth_round_trip_stores_the_tokens_encrypted_and_never_shows_them(kit, wattline):
    url, running, ctx, account, admin, _other = wattline
    with httpx.Client(headers={"Authorization": f"Bearer {admin}"}) as browser:
        start = browser.get(f"{url}/api/auth/enphase/auth", params={"account_id": account})
        assert start.status_code == 302
        to = urlsplit(start.headers["location"])
        assert f"{to.scheme}://{to.netloc}" == running.base_url and to.path == "/oauth/authorize"
        q = parse_qs(to.query)
        assert q["client_id"] == [emu.DEMO_CLIENT_ID] and q["response_type"] == ["code"]
        assert q["redirect_uri"] == [f"{url}/api/auth/enphase/callback"] and q["state"][0]
        assert emu.DEMO_CLIENT_SECRET not in start.headers["location"]

        approved = browser.get(start.headers["location"])  # the owner approves at Enphase
        assert approved.status_code == 302
        back = approved.headers["location"]
        assert back.startswith(f"{url}/api/auth/enphase/callback?") and parse_qs(urlsplit(back).query)["state"] == q["state"]

        done = browser.get(back)
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["account_id"] == account and body["authorized"] is True and body["vendor_type"] == "enphase"

    creds = _creds(ctx, account)
    assert creds["access_token"] and creds["refresh_token"] and int(creds["access_expires_at"]) > kit.NOW
    for secret in (creds["access_token"], creds["refresh_token"], emu.DEMO_CLIENT_SECRET):
        assert secret not in done.text
    with ctx.dbs.main.connect() as conn:
        blob = vendor_accounts_repo.get(conn, account)["credentials_encrypted"]
    assert creds["access_token"].encode() not in blob  # encrypted at rest
    assert running.state.stats.count("enphase", "token", status=200) == 1

    # the stored tokens work
    ad = EnphaseAdapter(running.base_url, creds, limiter=RateLimiter.unlimited(), retry_waits_s=kit.FAST_WAITS)

    async def main():
        async with ad:
            await ad.test_connection()
            return await ad.list_plants()

    plants = kit.run(main())
    assert [(p.vendor_plant_id, p.timezone, p.capacity_kw) for p in plants] == [(SYSTEM, "Australia/Sydney", 8.2)]


def test_callback_refuses_a_wrong_state_and_changes_nothing(kit, wattline):
    url, running, ctx, account, admin, other = wattline
    before = _creds(ctx, account)
    with httpx.Client(headers={"Authorization": f"Bearer {admin}"}) as browser:
        start = browser.get(f"{url}/api/auth/enphase/auth", params={"account_id": account})
        back = browser.get(start.headers["location"]).headers["location"]
        q = parse_qs(urlsplit(back).query)
        code, state = q["code"][0], q["state"][0]
        cb = f"{url}/api/auth/enphase/callback"
        tampered = state.rsplit(".", 1)[0] + "." + "0" * 64
        other_account = str(account + 1) + state[state.index("."):]
        for bad in (tampered, other_account, "", "junk"):
            r = browser.get(cb, params={"code": code, "state": bad})
            assert r.status_code == 400 and r.json()["code"] == "invalid_state", r.text
        r = browser.get(cb, params={"code": code})
        assert r.status_code == 400 and r.json()["code"] == "invalid_state"
    with httpx.Client(headers={"Authorization": f"Bearer {admin}"}) as stranger:  # another browser: no cookie
        r = stranger.get(cb, params={"code": code, "state": state})
        assert r.status_code == 400 and "browser" in r.json()["error"]
    with httpx.Client(headers={"Authorization": f"Bearer {other}"}) as other_user:  # another user, same cookie
        other_user.cookies.set("wattline_enphase_oauth", state.split(".")[1])
        r = other_user.get(cb, params={"code": code, "state": state})
        assert r.status_code == 400 and r.json()["code"] == "invalid_state"
    r = httpx.get(cb, params={"code": code, "state": state})
    assert r.status_code == 401  # anonymous
    assert _creds(ctx, account) == before and "access_token" not in before
    assert running.state.stats.count("enphase", "token") == 0  # the code was never even tried


def test_auth_start_for_an_unknown_account_and_a_refused_code(kit, wattline):
    url, running, ctx, account, admin, _other = wattline
    h = {"Authorization": f"Bearer {admin}"}
    assert httpx.get(f"{url}/api/auth/enphase/auth", params={"account_id": 999}, headers=h).status_code == 404
    r = httpx.get(f"{url}/api/auth/enphase/auth", params={"account_id": "x"}, headers=h)
    assert r.status_code == 400 and r.json()["code"] == "invalid_parameter"
    with httpx.Client(headers=h) as browser:
        start = browser.get(f"{url}/api/auth/enphase/auth", params={"account_id": account})
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        r = browser.get(f"{url}/api/auth/enphase/callback", params={"code": "not-a-code", "state": state})
        assert r.status_code == 400 and r.json()["code"] == "grant_refused"
    assert "access_token" not in _creds(ctx, account)


def test_start_answers_json_when_asked(kit, wattline):
    url, running, _ctx, account, admin, _other = wattline
    r = httpx.get(f"{url}/api/auth/enphase/auth", params={"account_id": account},
                  headers={"Authorization": f"Bearer {admin}", "Accept": "application/json"})
    assert r.status_code == 200 and r.cookies.get("wattline_enphase_oauth")
    assert r.json()["authorize_url"].startswith(f"{running.base_url}/oauth/authorize?")


# -- the backfill job: paused by the monthly quota, resumed, rotated tokens stored -----------------


def test_backfill_job_pauses_on_the_monthly_quota_resumes_and_stores_the_rotated_tokens(
        kit, sqlite_dbs, tmp_path, set_clock):
    from wattline.jobs.backfill import backfill_plant
    from world import stored

    set_clock(kit.NOW)  # the cloud, the limiter, the adapter and the job all read Wattline's clock
    ctx = make_ctx(sqlite_dbs, tmp_path)
    config = CloudConfig(clock=wall_clock.now, history_source="clear_sky", warm_plants=False)
    with BackgroundCloud(config) as running:
        running.app.state.enphase.settings.refresh_ttl_s = 60 * 86400
        ec = running.app.state.enphase
        code = ec.oauth.issue_code(emu.DEMO_CLIENT_ID, "http://127.0.0.1/cb", kit.NOW, 600)
        first = EnphaseAdapter(running.base_url, APP, limiter=RateLimiter.unlimited())
        tokens_now = kit.run(first.exchange_code(code, "http://127.0.0.1/cb")).to_storage()
        with ctx.dbs.main.begin() as conn:
            account = provisioning.add_vendor_account(
                conn, ctx.settings, "enphase", "house", tokens_now, base_url=running.base_url,
                rate_limits={"calls_per_minute": 10, "calls_per_day": None, "calls_per_month": 2})
            pid = provisioning.add_vendor_plant(conn, "Enphase house", "enphase", SYSTEM, "Australia/Sydney",
                                                vendor_account_id=account,
                                                start_operating_time=kit.NOW - 14 * kit.DAY)
        waits: list[float] = []

        async def sleep(s: float) -> None:  # simulated: the quota's month passes at once
            waits.append(s)
            set_clock(wall_clock.now() + s)

        result = kit.run(backfill_plant(ctx, pid, now=kit.NOW, sleep=sleep))
        assert result.success, result.errors
        assert waits and waits[0] == pytest.approx(1733011200 - kit.NOW, abs=5)  # paused until 1 December
        calls = running.state.stats.count("enphase", "production_micro", status=200)
        assert calls == 3 and running.state.stats.count("enphase", status=429) == 0
        ts, kwh = stored(ctx, pid, SOLAR_KWH)
        want = expected(kit, kit.NOW - 14 * kit.DAY, kit.NOW + 1)
        assert dict(zip(ts.tolist(), kwh.tolist())) == {t: v[SOLAR_KWH] for t, v in want.items()}
        # a month later the access token had expired: refreshed, and the rotated pair stored
        assert running.state.stats.count("enphase", "token", status=200) == 2
        now_stored = _creds(ctx, account)
        assert now_stored["refresh_token"] != tokens_now["refresh_token"]
        assert now_stored["access_token"] != tokens_now["access_token"]


def test_no_log_line_holds_the_key_or_a_token(kit, cloud, caplog):
    import logging

    running, clock = cloud
    caplog.set_level(logging.INFO, logger="httpx")
    ad, stored = authorized(kit, running, clock)
    running.app.state.enphase.oauth.expire_access_tokens()  # a refresh too

    async def main():
        async with ad:
            return await ad.fetch_latest(SYSTEM, "UTC", now_ts=int(clock.t))

    assert kit.run(main()).records
    text = caplog.text
    assert "production_micro" in text and "key=***" in text  # httpx logged the call, redacted
    for secret in (emu.DEMO_API_KEY, emu.DEMO_CLIENT_SECRET, stored["access_token"], stored["refresh_token"]):
        assert secret not in text


def test_server_errors_timeouts_and_malformed_intervals_over_http(kit, start_cloud):
    clock = Clock(kit.NOW)
    running = start_cloud(clock=clock, history_source="clear_sky", warm_plants=False, slow_delay_s=0.5,
                          scripted_faults=["503", "slow", "500", "malformed"], seed=5)
    ad, _ = authorized(kit, running, clock, timeout_s=0.2)  # the token call is outside the faults

    async def main():
        async with ad:
            return await ad.fetch_history(SYSTEM, kit.NOW - 6 * kit.DAY, kit.NOW, "UTC")

    result = kit.run(main())
    assert [c.status for c in result.calls] == [503, None, 500, 200]  # retried through all three
    assert result.calls[1].error.startswith("timeout")
    assert 1 <= len(result.rejected) <= 3 and all(r.reason for r in result.rejected)
    want = expected(kit, kit.NOW - 6 * kit.DAY, kit.NOW)
    assert {r.ts: r.values for r in result.records}.items() <= want.items()
    assert len(result.records) + len(result.rejected) == len(want)  # every interval: kept or rejected

"""Minute polling against the emulated Solarman and Sungrow clouds over real HTTP:
readings in the ledger, one session per poll linked to its response, a slow system
that delays no other, overruns skipped not queued, error after 3 failures and back,
and the shared per-account limiter never exceeded (the cloud's own limit counts)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from sqlalchemy import select

from test_systems import Server
from world import CLOUD_NOW, WorldPlant, cloud_config, expected, make_ctx
from wattline import system_admin
from wattline.jobs import poll as poll_module
from wattline.api.app import create_app
from wattline.jobs.poll import Poller, poll_once
from wattline.security import tokens
from wattline.security.users import create_user
from wattline.simulator.vendor_cloud.config import DEFAULT_CREDENTIALS
from wattline.simulator.vendor_cloud.server import BackgroundCloud
from wattline.sources.vendors.ratelimit import RateLimiter
from wattline.store import id_chunks, sessions_repo, systems_repo
from wattline.store.tables import poll_sessions, raw_events, readings

START = CLOUD_NOW - 2 * 86400
FAST = [WorldPlant(0, "solarman", "71000001", "UTC", START),
        WorldPlant(0, "solarman", "71000002", "Europe/Berlin", START),
        WorldPlant(0, "sungrow", "71000003", "Australia/Sydney", START)]
SLOW = WorldPlant(0, "sungrow", "71000009", "UTC", START)
UNLIMITED = {"calls_per_minute": None, "calls_per_day": None, "calls_per_month": None}


@pytest.fixture
def world(dbs, tmp_path, set_clock):
    """A context on fresh databases at the clouds' "now", with user alice."""
    set_clock(CLOUD_NOW)
    ctx = make_ctx(dbs, tmp_path)
    with dbs.main.begin() as conn:
        create_user(conn, "alice", "a long test password", "user")
    return ctx


def add(ctx, plant: WorldPlant, base_url: str, alias: str, **kw) -> int:
    with ctx.dbs.main.begin() as conn:
        if "account_id" not in kw:
            kw.update(credentials=DEFAULT_CREDENTIALS[plant.vendor], rate_limits=UNLIMITED)
        return system_admin.add_system(conn, ctx.settings, alias, plant.vendor, plant.vendor_plant_id, "alice",
                                       timezone=plant.timezone, base_url=base_url, alias=alias, **kw)


def sessions(ctx, system_id: int) -> list[dict]:
    return sorted(sessions_repo.list_sessions(ctx.dbs.telemetry, system_ids=[system_id]), key=lambda s: s["id"])


def stored(ctx, system_id: int) -> dict[str, list[tuple[int, float, int]]]:
    with ctx.dbs.main_reader.connect() as conn:
        keys = {p["id"]: p["key"] for p in systems_repo.system_points(conn, system_id)}
    with ctx.dbs.telemetry.connect() as conn:
        rows = conn.execute(select(readings.c.series_id, readings.c.ts, readings.c.value, readings.c.raw_event_id)
                            .where(readings.c.series_id.in_(keys)).order_by(readings.c.ts)).all()
    out: dict[str, list] = {}
    for sid, ts, value, raw in rows:
        out.setdefault(keys[sid], []).append((ts, value, raw))
    return out


def status(ctx, system_id: int) -> tuple[str, int]:
    with ctx.dbs.main_reader.connect() as conn:
        row = next(r for r in system_admin.systems_with_status(conn, ctx.dbs.telemetry) if r["id"] == system_id)
    return row["status"], row["consecutive_failures"]


def test_a_sharded_tick_polls_only_its_systems_and_the_shards_cover_the_fleet(world):
    ctx = world
    with BackgroundCloud(cloud_config(FAST)) as cloud:
        ids = [add(ctx, p, cloud.base_url, f"s{i}") for i, p in enumerate(FAST)]
        polled = []
        for k in range(2):
            report = asyncio.run(poll_once(ctx, force=True, shard=(k, 2)))
            assert report.to_dict()["failed"] == 0
            polled.append(sorted(o.system_id for o in report.outcomes))
    assert polled == [[i for i in sorted(ids) if i % 2 == 0], [i for i in sorted(ids) if i % 2 == 1]]


@pytest.mark.parametrize("ids_per_statement", [None, 1], ids=["one-statement", "one-id-per-statement"])
def test_a_poll_stores_the_latest_values_and_one_session_per_system(world, ids_per_statement, monkeypatch):
    # with one id per statement every id list of the tick (systems, claims, poll states,
    # point transforms) is split as a 10,000-system tick's is on PostgreSQL (65,535
    # parameters a statement at most), and the outcome must be the same
    if ids_per_statement:
        monkeypatch.setattr(id_chunks, "IDS_PER_STATEMENT", ids_per_statement)
        monkeypatch.setattr(systems_repo, "TRANSFORMS_SCANNED_ABOVE", 0)  # the big tick's transform scan
    ctx = world
    cfg = cloud_config(FAST)
    with BackgroundCloud(cfg) as cloud:
        ids = [add(ctx, p, cloud.base_url, f"s{i}") for i, p in enumerate(FAST)]
        with ctx.dbs.main.begin() as conn:  # halve system 0's power from an hour ago on
            system_admin.edit_point(conn, ids[0], "power", transform={"scale": 0.5}, effective_from=CLOUD_NOW - 3600)
        report = asyncio.run(poll_once(ctx, force=True))
        assert (report.to_dict()["polled"], report.to_dict()["failed"]) == (3, 0)
        again = asyncio.run(poll_once(ctx))  # a minute has not passed: nothing is due
        assert again.not_due == 3 and again.outcomes == []
    for sid, plant in zip(ids, FAST):
        series = expected(cfg, plant)
        want = {"power": series.power_kw[-1], "energy_total": series.energy_total_kwh[-1],
                "energy_today": series.energy_today_kwh[-1]}
        if sid == ids[0]:
            want["power"] *= 0.5  # the transform in force at CLOUD_NOW
        got = stored(ctx, sid)
        assert set(got) == set(want)
        for key, rows in got.items():
            assert [ts for ts, _, _ in rows] == [CLOUD_NOW]  # the newest record only
            assert rows[0][1] == pytest.approx(want[key], rel=1e-3, abs=1e-3), key
        (session,) = sessions(ctx, sid)
        assert (session["success"], session["cause"], session["num_readings"], session["vendor_type"]) == (
            True, "USER", 3, plant.vendor)
        # the session links the response, and every reading came from it
        assert {raw for rows in got.values() for _, _, raw in rows} == {session["raw_event_id"]}
        with ctx.dbs.telemetry.connect() as conn:
            payload = conn.execute(select(raw_events.c.payload).where(
                raw_events.c.id == session["raw_event_id"])).scalar()
        assert payload and json.loads(payload)  # the vendor's record, untouched by the transform
    assert status(ctx, ids[0]) == ("active", 0)


def test_a_poll_that_waited_for_a_slot_is_due_again_a_minute_after_its_tick(world, set_clock, monkeypatch):
    """Due-ness counts from the tick, not from when a poll got one of the poller's slots:
    at 10,000 systems the last polls of a tick start many seconds late, and counted from
    there they were not due at the next minute, so they were polled every other minute."""
    monkeypatch.setattr(poll_module, "SLACK_S", 0.5)
    ctx = world
    with BackgroundCloud(cloud_config([SLOW], latency_ms=1500)) as slow, BackgroundCloud(cloud_config(FAST[:1])) as fast:
        slow_id = add(ctx, SLOW, slow.base_url, "slow")
        late_id = add(ctx, FAST[0], fast.base_url, "late")  # waits for the slow one's slot

        async def two_ticks():
            poller = Poller(ctx, concurrency=1)
            try:
                first = await poller.poll()
                # the next minute's tick, a little early: counted from the first poll to get
                # a slot, which started within milliseconds of its tick
                first_start_s = min(o.started_at_ms for o in first.outcomes) / 1000
                set_clock(first_start_s + 60 - 0.4)
                return first, await poller.poll()
            finally:
                await poller.aclose()

        first, second = asyncio.run(two_ticks())
    late = next(o for o in first.outcomes if o.system_id == late_id)
    slow_first = next(o for o in first.outcomes if o.system_id == slow_id)
    assert late.started_at_ms >= slow_first.started_at_ms + 1400  # it really started late
    assert sorted(o.system_id for o in second.outcomes) == sorted([slow_id, late_id])  # both due again
    assert second.not_due == 0


def test_a_long_lived_poller_takes_up_credentials_changed_since_its_last_tick(world):
    """An owner replaces an account's credentials while ``wattline serve`` runs: the next
    tick logs in with the new ones (here wrong, so it fails) instead of going on with
    the session the old ones opened."""
    from wattline.security.crypto import encrypt_credentials
    from wattline.store import vendor_accounts_repo
    from wattline.store.tables import assets

    ctx = world
    with BackgroundCloud(cloud_config(FAST[:1])) as cloud:
        sid = add(ctx, FAST[0], cloud.base_url, "s0")
        with ctx.dbs.main.connect() as conn:
            account_id = conn.execute(select(assets.c.vendor_account_id).where(assets.c.id == sid)).scalar_one()

        async def ticks():
            poller = Poller(ctx)
            try:
                before = await poller.poll(force=True)
                wrong = {**DEFAULT_CREDENTIALS["solarman"], "password": "not the password"}
                with ctx.dbs.main.begin() as conn:
                    vendor_accounts_repo.replace_credentials(
                        conn, account_id, encrypt_credentials(ctx.settings.encryption_key, wrong))
                return before, await poller.poll(force=True)
            finally:
                await poller.aclose()

        before, after = asyncio.run(ticks())
    assert [o.success for o in before.outcomes] == [True]
    assert [o.success for o in after.outcomes] == [False]
    assert "password is incorrect" in (after.outcomes[0].error or "")  # the vendor refused the new ones


def test_a_slow_system_delays_no_other_and_an_overrun_is_skipped_not_queued_in_any_process(world):
    ctx = world
    with BackgroundCloud(cloud_config(FAST)) as fast, BackgroundCloud(cloud_config([SLOW], latency_ms=1500)) as slow:
        fast_ids = [add(ctx, p, fast.base_url, f"f{i}") for i, p in enumerate(FAST)]
        slow_id = add(ctx, SLOW, slow.base_url, "slow")

        async def two_ticks():
            poller, other_process = Poller(ctx, concurrency=8), Poller(ctx)
            try:
                first, _ = await poller.start_due(force=True)
                # the next tick comes while the slow system's poll still runs
                second, report = await poller.start_due(force=True)
                # so does another process's: the system's claim in the database holds it off
                third_party, other = await other_process.start_due(force=True)
                await asyncio.gather(*first, *second, *third_party)
                assert slow_id in other.skipped_running
                slow.state.config.latency_ms = 0
                third = await poller.poll(force=True)  # no longer running: polled again
                return report, third, poller.overruns
            finally:
                await poller.aclose()
                await other_process.aclose()

        report, third, overruns = asyncio.run(two_ticks())
        slow_history_calls = slow.state.stats.count("sungrow", status=200) - 1  # all but the one login
    assert slow_id in report.skipped_running and overruns >= 1
    state = sessions_repo.poll_states(ctx.dbs.telemetry, [slow_id])[slow_id]
    assert state["skipped_overruns"] == 2 and state["polling_until_ms"] is None  # both skips; claim released
    slow_sessions = sessions(ctx, slow_id)
    assert len(slow_sessions) == 2 and all(s["success"] for s in slow_sessions)  # ticks 1 and 3, not the skipped
    assert slow_history_calls == 2  # the skipped tick asked the vendor nothing
    assert slow_id in {o.system_id for o in third.outcomes}
    slow_first = slow_sessions[0]
    slow_end = slow_first["started_at_ms"] + slow_first["duration_ms"]
    for sid in fast_ids:
        firsts = sessions(ctx, sid)
        assert firsts and all(s["success"] for s in firsts)
        # each fast system's first poll started and ended while the slow one was still waiting
        assert firsts[0]["started_at_ms"] + firsts[0]["duration_ms"] < slow_end
        assert firsts[0]["duration_ms"] < slow_first["duration_ms"]


def test_three_failures_put_a_system_in_error_and_a_success_brings_it_back(world):
    ctx = world
    with BackgroundCloud(cloud_config(FAST[:1])) as fast, \
            BackgroundCloud(cloud_config([SLOW], latency_ms=1000)) as slow:
        ok_id = add(ctx, FAST[0], fast.base_url, "ok")
        bad_id = add(ctx, SLOW, slow.base_url, "bad")
        with ctx.dbs.main.begin() as conn:
            token = tokens.create_token(conn, "ops", "admin")

        async def ticks():
            poller = Poller(ctx, timeout_s=0.3, retry_waits_s=(0.0,))
            seen = []
            try:
                for i in range(4):
                    if i == 3:
                        slow.state.config.latency_ms = 0  # the vendor recovers
                    report = await poller.poll(cause="ADMIN", force=True)
                    seen.append((status(ctx, bad_id), {o.system_id: o.success for o in report.outcomes}))
            finally:
                await poller.aclose()
            return seen

        seen = asyncio.run(ticks())
        ctx.settings.cron_secret = "cron-secret-for-tests"
        cron = {"Authorization": "Bearer cron-secret-for-tests"}
        with Server(create_app(ctx)) as server:  # the admin view: per-vendor success rate and mean duration
            body = httpx.get(server.url + "/api/admin/sessions", headers={"Authorization": f"Bearer {token}"}).json()
            failed = httpx.get(server.url + "/api/admin/sessions", params={"systemId": bad_id, "success": "false"},
                               headers={"Authorization": f"Bearer {token}"}).json()
            not_due = httpx.post(server.url + "/api/cron/poll", headers=cron)  # polled moments ago
            forced = httpx.post(server.url + "/api/cron/poll", params={"force": "true"}, headers=cron)
    assert [s for s, _ in seen] == [("active", 1), ("active", 2), ("error", 3), ("active", 0)]
    assert [o[bad_id] for _, o in seen] == [False, False, False, True]
    assert all(o[ok_id] for _, o in seen)  # the failing system never held the other back
    bad = sessions(ctx, bad_id)
    assert [s["vendor_error_code"] for s in bad] == ["timeout"] * 3 + [None, None]
    assert bad[0]["error"] and bad[0]["raw_event_id"] is None and bad[3]["raw_event_id"] is not None

    by_vendor = {v["vendorType"]: v for v in body["byVendor"]}
    assert (by_vendor["sungrow"]["sessions"], by_vendor["sungrow"]["successRate"]) == (4, 0.25)
    assert (by_vendor["solarman"]["sessions"], by_vendor["solarman"]["successRate"]) == (4, 1.0)
    assert by_vendor["sungrow"]["meanDurationMs"] == pytest.approx(sum(s["duration_ms"] for s in bad[:4]) / 4)
    assert [s["systemId"] for s in failed["sessions"]] == [bad_id] * 3 and all(
        not s["success"] for s in failed["sessions"])
    # the cron secret polls what is due (nothing, a moment later) or, forced, everything
    assert not_due.status_code == 200 and (not_due.json()["notDue"], not_due.json()["polled"]) == (2, 0)
    assert forced.status_code == 200 and (forced.json()["polled"], forced.json()["failed"]) == (2, 0)
    assert [s["cause"] for s in bad] == ["ADMIN"] * 4 + ["CRON"]


class FakeClock:
    """The account limiter's and the cloud's time. A limiter sleep moves both at once,
    once every call granted so far has reached the cloud (``settled``): time does not
    jump while a request is on the wire."""

    def __init__(self, t: float) -> None:
        self.t = float(t)
        self.sleeps: list[float] = []
        self.settled = lambda: True

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        for _ in range(1000):  # bounded: at most ~10 s
            if self.settled():
                break
            await asyncio.sleep(0.01)
        self.t += seconds


def test_the_shared_account_limiter_is_never_exceeded(world):
    ctx = world
    fake = FakeClock(CLOUD_NOW)
    plants = [WorldPlant(0, "solarman", f"7200000{i}", "UTC", START) for i in range(4)]
    cfg = cloud_config(plants, rate_limit_per_minute=3)  # the cloud itself answers 429 past 3 calls a minute
    cfg.clock = fake
    with BackgroundCloud(cfg) as cloud:
        first = add(ctx, plants[0], cloud.base_url, "p0")
        with ctx.dbs.main_reader.connect() as conn:
            account = systems_repo.system(conn, first)["vendor_account_id"]
        ids = [first] + [add(ctx, p, cloud.base_url, f"p{i + 1}", account_id=account) for i, p in enumerate(plants[1:])]
        limiter = RateLimiter(3, None, None, clock=fake, sleep=fake.sleep)
        ctx.limiters.put(f"account:{account}", limiter)
        fake.settled = lambda: len(cloud.state.stats.calls) >= limiter.usage()["calls_today"]
        report = asyncio.run(poll_once(ctx, force=True, concurrency=4))
        calls = cloud.state.stats.calls
    assert report.to_dict()["succeeded"] == 4
    assert len(calls) > 3  # more calls than one minute allows: the limiter had to pace them
    assert all(c.status != 429 for c in calls), "the cloud's own limit was exceeded"
    assert fake.sleeps and fake.t - CLOUD_NOW >= 60
    assert all(len(sessions(ctx, sid)) == 1 for sid in ids)
    with ctx.dbs.telemetry.connect() as conn:
        assert conn.execute(select(poll_sessions.c.id)).all().__len__() == 4


def test_serve_schedules_the_poll_every_minute_and_the_cli_polls_once(world, monkeypatch):
    from typer.testing import CliRunner

    from wattline.cli import app as cli_app
    from wattline.jobs.scheduler import build_scheduler

    ctx = world
    job = build_scheduler(ctx).get_job("poll-systems")
    assert job is not None and str(job.trigger) == "cron[second='0']"
    with BackgroundCloud(cloud_config(FAST[:1])) as cloud:
        sid = add(ctx, FAST[0], cloud.base_url, "cli")
        for var, value in (("WATTLINE_MAIN_URL", ctx.settings.main_url), ("WATTLINE_TELEMETRY_URL",
                                                                          ctx.settings.telemetry_url),
                           ("WATTLINE_SECRET_KEY", ctx.settings.secret_key),
                           ("WATTLINE_DATA_DIR", str(ctx.settings.data_dir))):
            monkeypatch.setenv(var, value)
        r = CliRunner().invoke(cli_app, ["poll", "--once"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["succeeded"] == 1
    (session,) = sessions(ctx, sid)
    assert session["cause"] == "CRON" and session["success"] and session["num_readings"] == 3


def _busy_account(ctx, system_id: int, busy_for_s: float) -> None:
    """The system's account limiter holds every call for ``busy_for_s`` (real time)."""
    import time

    with ctx.dbs.main_reader.connect() as conn:
        account = systems_repo.system(conn, system_id)["vendor_account_id"]
    limiter = RateLimiter(None, None, None, clock=time.time)
    limiter.block_for(busy_for_s)
    ctx.limiters.put(f"account:{account}", limiter)


def test_waiting_for_the_account_limiter_does_not_count_against_the_poll_timeout(world):
    ctx = world
    with BackgroundCloud(cloud_config(FAST[:1], latency_ms=300)) as cloud:
        sid = add(ctx, FAST[0], cloud.base_url, "busy")
        _busy_account(ctx, sid, 1.5)  # longer than the poll's whole timeout
        report = asyncio.run(poll_once(ctx, force=True, timeout_s=1.0, limiter_wait_s=10))
    (outcome,) = report.outcomes
    assert outcome.success, outcome.error
    (session,) = sessions(ctx, sid)
    assert session["success"] and session["num_readings"] == 3 and session["duration_ms"] >= 1500


def test_a_poll_the_limiter_holds_too_long_fails_as_rate_limited_not_as_a_timeout(world):
    ctx = world
    with BackgroundCloud(cloud_config(FAST[:1])) as cloud:
        sid = add(ctx, FAST[0], cloud.base_url, "held")
        _busy_account(ctx, sid, 30)
        report = asyncio.run(poll_once(ctx, force=True, timeout_s=5.0, limiter_wait_s=0.3))
        calls = len(cloud.state.stats.calls)
    (outcome,) = report.outcomes
    assert not outcome.success and "rate-limited" in outcome.error and "timeout" not in outcome.error.lower()
    (session,) = sessions(ctx, sid)
    assert session["vendor_error_code"] == "rate_limited" and session["duration_ms"] < 3000
    assert calls == 0  # nothing reached the vendor


def test_a_slow_vendor_still_times_out_with_the_limiter_free(world):
    ctx = world
    with BackgroundCloud(cloud_config(FAST[:1], latency_ms=1500)) as cloud:
        sid = add(ctx, FAST[0], cloud.base_url, "slowv")
        report = asyncio.run(poll_once(ctx, force=True, timeout_s=0.5))
    (outcome,) = report.outcomes
    assert not outcome.success and outcome.error.startswith("no answer within")
    assert sessions(ctx, sid)[0]["vendor_error_code"] == "timeout"


def test_the_emulation_latency_holds_every_call_without_blocking_the_others(monkeypatch):
    import time

    from wattline.simulator.vendor_cloud.config import CloudConfig

    monkeypatch.setenv("WATTLINE_EMULATOR_LATENCY_MS", "400")
    monkeypatch.setenv("WATTLINE_EMULATOR_BENCH", "1")
    cfg = CloudConfig(history_source="clear_sky", warm_plants=False)
    assert (cfg.latency_ms, cfg.bench_mode) == (400.0, True)
    monkeypatch.setenv("WATTLINE_EMULATOR_LATENCY_MS", "-1")
    with pytest.raises(ValueError):
        CloudConfig()
    path = "/sites/fronius-{}/solar_api/v1/GetPowerFlowRealtimeData.fcgi"
    with BackgroundCloud(cfg) as cloud:
        async def calls():
            async with httpx.AsyncClient(base_url=cloud.base_url, timeout=10) as client:
                async def one(i):
                    t = time.perf_counter()
                    r = await client.get(path.format(i))
                    return r.status_code, time.perf_counter() - t
                t0 = time.perf_counter()
                got = await asyncio.gather(*(one(i) for i in range(20)))
                return got, time.perf_counter() - t0
        got, wall = asyncio.run(calls())
        health = httpx.get(cloud.base_url + "/_emulator/health").json()
    assert all(status == 200 and took >= 0.4 for status, took in got)
    assert wall < 1.2  # 20 calls of 0.4 s at once: held side by side, not one after another (8 s)
    assert health["latencyMs"] == 400 and health["benchMode"] is True


def test_a_long_lived_poller_keeps_its_registry_between_ticks_and_sees_every_change_at_the_next(world):
    # the fleet's systems, series and transforms are read again only when the registry's
    # version moved; a system added, paused, resumed, removed, a point made inactive or a
    # transform added must each show at the very next tick
    ctx = world
    seen: list[dict[int, tuple[set[str], dict]]] = []

    class Recording(Poller):
        async def _poll(self, s, cause, versions, *args, **kw):
            seen[-1][s.plant_id] = (set(s.series), {k: versions.get(sid, []) for k, sid in s.series.items()})
            return await super()._poll(s, cause, versions, *args, **kw)

    with BackgroundCloud(cloud_config(FAST)) as cloud:
        a, b = (add(ctx, p, cloud.base_url, f"s{i}") for i, p in enumerate(FAST[:2]))

        async def tick(poller) -> dict[int, tuple[set[str], dict]]:
            seen.append({})
            report = await poller.poll(force=True)
            assert report.to_dict()["failed"] == 0
            assert set(seen[-1]) == {o.system_id for o in report.outcomes}
            return seen[-1]

        def change(fn) -> None:
            with ctx.dbs.main.begin() as conn:
                fn(conn)

        async def ticks() -> dict:
            poller = Recording(ctx)
            try:
                assert set(await tick(poller)) == {a, b}
                assert set(await tick(poller)) == {a, b}
                assert poller.registry_reads == {"read": 1, "cached": 1}  # nothing changed: not read again
                c = add(ctx, FAST[2], cloud.base_url, "s2")
                assert set(await tick(poller)) == {a, b, c}
                change(lambda conn: system_admin.set_status(conn, b, "paused"))
                assert set(await tick(poller)) == {a, c}
                change(lambda conn: system_admin.set_status(conn, b, "active"))
                assert set(await tick(poller)) == {a, b, c}
                assert (await tick(poller))[a][1]["power"] == []
                change(lambda conn: system_admin.edit_point(conn, a, "power", transform={"scale": 0.5},
                                                            effective_from=CLOUD_NOW - 3600))
                assert (await tick(poller))[a][1]["power"] == [(CLOUD_NOW - 3600, {"scale": 0.5})]
                change(lambda conn: system_admin.edit_point(conn, a, "energy_today", active=False))
                assert (await tick(poller))[a][0] == {"power", "energy_total"}  # an inactive point: not collected
                change(lambda conn: system_admin.delete_system(conn, c, by="alice", now_s=CLOUD_NOW))
                assert set(await tick(poller)) == {a, b}
                assert set(await tick(poller)) == {a, b}
                return dict(poller.registry_reads)
            finally:
                await poller.aclose()

        reads = asyncio.run(ticks())
    assert reads == {"read": 7, "cached": 3}  # one read per change, and the first


def test_the_pollers_of_a_process_share_the_registry_they_read(world):
    # the engine's poll job makes a Poller a tick (poll_once): the next one reuses the
    # registry the last one read, until it changes
    ctx = world
    with BackgroundCloud(cloud_config(FAST[:2])) as cloud:
        a = add(ctx, FAST[0], cloud.base_url, "s0")

        async def one_tick() -> tuple[set[int], dict]:
            poller = Poller(ctx)
            try:
                report = await poller.poll(force=True)
                return {o.system_id for o in report.outcomes}, dict(poller.registry_reads)
            finally:
                await poller.aclose()

        assert asyncio.run(one_tick()) == ({a}, {"read": 1, "cached": 0})
        assert asyncio.run(one_tick()) == ({a}, {"read": 0, "cached": 1})
        b = add(ctx, FAST[1], cloud.base_url, "s1")
        assert asyncio.run(one_tick()) == ({a, b}, {"read": 1, "cached": 0})


def test_without_the_registry_triggers_the_poller_reads_the_registry_every_tick(world):
    # a later SQLite batch migration that rebuilds a table drops its trigger: the version
    # can no longer be trusted, so nothing is cached (and a paused system still stops)
    from sqlalchemy import text

    from wattline.store import registry_version

    ctx = world
    assert registry_version.current(ctx.dbs.main_reader) is not None
    with ctx.dbs.main.begin() as conn:
        if ctx.dbs.main.dialect.name == "postgresql":
            conn.execute(text("DROP TRIGGER registry_changed_systems ON systems"))
        else:
            conn.execute(text("DROP TRIGGER registry_changed_systems_update"))
    assert registry_version.current(ctx.dbs.main_reader) is None
    with BackgroundCloud(cloud_config(FAST[:2])) as cloud:
        a, b = (add(ctx, p, cloud.base_url, f"s{i}") for i, p in enumerate(FAST[:2]))

        async def ticks():
            poller = Poller(ctx)
            try:
                first = await poller.poll(force=True)
                with ctx.dbs.main.begin() as conn:
                    system_admin.set_status(conn, b, "paused")
                second = await poller.poll(force=True)
                return first, second, dict(poller.registry_reads)
            finally:
                await poller.aclose()

        first, second, reads = asyncio.run(ticks())
    assert {o.system_id for o in first.outcomes} == {a, b}
    assert {o.system_id for o in second.outcomes} == {a}
    assert reads == {"read": 2, "cached": 0}


def test_polls_that_finish_while_the_writer_is_busy_gather_into_one_batch(world, monkeypatch):
    """A slow batch is being written while 30 more polls finish one by one: they wait
    for the slot and go as one batch (before: a batch every 50 ms, queued behind the
    slow one, each paying a batch's fixed cost)."""
    import time

    from wattline.jobs.poll import _Fetched, _Writer

    writer = _Writer(world, max_items=100, max_wait_s=0.02, max_flushes=1)
    sizes = []

    def slow_write(items):
        sizes.append(len(items))
        time.sleep(0.4)
        return [({"success": True}, 0) for _ in items]

    monkeypatch.setattr(writer, "_write", slow_write)

    async def spread():
        first = asyncio.ensure_future(writer.write(_Fetched(None, "CRON", 0.0, None, None, None, {})))
        later = []
        await asyncio.sleep(0.05)  # the first batch is being written
        for _ in range(30):
            later.append(asyncio.ensure_future(writer.write(_Fetched(None, "CRON", 0.0, None, None, None, {}))))
            await asyncio.sleep(0.01)
        return await asyncio.gather(first, *later)

    results = asyncio.run(spread())
    assert len(results) == 31 and sizes == [1, 30]
    assert writer.stats["batches"] == 2 and writer.stats["polls"] == 31


def test_the_poll_writer_defaults_by_database(world):
    from wattline.jobs.poll import Poller, writer_defaults

    poller = Poller(world)
    want = writer_defaults(world.dbs.telemetry.dialect.name)
    assert (poller._writer.max_items, poller._writer.max_flushes) == want
    assert want == ((512, 1) if world.dbs.telemetry.dialect.name == "sqlite" else (128, 2))
    asyncio.run(poller.aclose())


def test_the_poll_writer_runs_a_bounded_number_of_batches_at_once(world, monkeypatch):
    """Each batch holds a PostgreSQL advisory lock per series until it commits; unbounded
    concurrent batches ran the server's lock table out at 10,000 systems."""
    import threading
    import time

    from wattline.jobs.poll import _Fetched, _Writer

    writer = _Writer(world, max_items=1, max_wait_s=0.0, max_flushes=2)
    now, peak, lock = [0], [0], threading.Lock()

    def slow_write(items):
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        time.sleep(0.05)
        with lock:
            now[0] -= 1
        return [({"success": True}, 0) for _ in items]

    monkeypatch.setattr(writer, "_write", slow_write)

    async def many():
        return await asyncio.gather(*(writer.write(_Fetched(None, "CRON", 0.0, None, None, None, {}))
                                      for _ in range(10)))

    results = asyncio.run(many())
    assert len(results) == 10 and peak[0] == 2


def test_each_system_keeps_its_own_place_in_a_spread_tick_and_the_places_are_even():
    window = 40.0
    offsets = [poll_module.spread_offset_s(sid, window) for sid in range(1, 10_001)]
    assert offsets == [poll_module.spread_offset_s(sid, window) for sid in range(1, 10_001)]  # fixed per system
    assert all(0 <= o < window for o in offsets)
    per_tenth = [0] * 10
    for o in offsets:
        per_tenth[int(o / window * 10)] += 1
    assert all(900 <= n <= 1100 for n in per_tenth), per_tenth  # even: no burst in any part of the window
    # consecutive ids (one account's systems, added together) land far apart
    assert min(abs(a - b) for a, b in zip(offsets[:100], offsets[1:101])) > window / 100


def test_the_spread_window_is_the_minute_less_a_margin(world):
    assert Poller(world).spread_window_s("solarman") == 60 - poll_module.SPREAD_MARGIN_S
    assert Poller(world).spread_window_s("amber") == 50  # every 5 min: spread within its minute
    assert Poller(world, spread_s=3).spread_window_s("solarman") == 3


def test_a_spread_tick_starts_each_poll_at_its_place_and_skips_one_still_polled_there(world):
    ctx = world
    window = 1.0
    with BackgroundCloud(cloud_config(FAST)) as fast, BackgroundCloud(cloud_config([SLOW], latency_ms=1500)) as slow:
        ids = [add(ctx, p, fast.base_url, f"s{i}") for i, p in enumerate(FAST)]
        slow_id = add(ctx, SLOW, slow.base_url, "slow")

        async def ticks():
            started: dict[int, float] = {}

            class Recording(Poller):
                async def _adapter_off_loop(self, s):
                    started[s.plant_id] = asyncio.get_running_loop().time() - t0
                    return await super()._adapter_off_loop(s)

            poller, other_process = Recording(ctx, spread_s=window), Poller(ctx)
            try:
                t0 = asyncio.get_running_loop().time()
                first = await poller.poll(system_ids=ids, force=True, spread=True)
                spread_at = dict(started)
                # another process polls the slow system; a spread tick comes meanwhile
                elsewhere, _ = await other_process.start_due(system_ids=[slow_id], force=True)
                second = await poller.poll(force=True, spread=True)
                await asyncio.gather(*elsewhere)
                started.clear()
                t0 = asyncio.get_running_loop().time()
                third = await poller.poll(force=True)  # not spread: all at once
                return first, spread_at, second, third, dict(started)
            finally:
                await poller.aclose()
                await other_process.aclose()

        first, spread_at, second, third, at_once = asyncio.run(ticks())
    assert len(first.outcomes) == 3 and all(o.success for o in first.outcomes)
    for sid in ids:
        place = poll_module.spread_offset_s(sid, window)
        assert place - 0.02 <= spread_at[sid] <= place + 0.5, (sid, place, spread_at[sid])
    assert max(spread_at.values()) - min(spread_at.values()) > 0.2  # not all at the tick
    # judged at its place (within the window, the other poll still ran): skipped, not queued
    assert second.skipped_running == [slow_id]
    assert sorted(o.system_id for o in second.outcomes) == sorted(ids) and all(o.success for o in second.outcomes)
    assert sessions_repo.poll_states(ctx.dbs.telemetry, [slow_id])[slow_id]["skipped_overruns"] == 1
    assert all(o.success for o in third.outcomes) and len(third.outcomes) == 4
    assert max(at_once.values()) < 0.5
    assert [len(sessions(ctx, sid)) for sid in ids] == [3, 3, 3]
    assert len(sessions(ctx, slow_id)) == 2  # the other process's and the last tick's


def test_a_spread_poll_whose_previous_poll_ends_before_its_place_is_polled_not_skipped(world):
    """Running at the tick is no overrun for a spread poll: only running at its place is."""
    ctx = world
    with BackgroundCloud(cloud_config([SLOW], latency_ms=1000)) as slow:
        slow_id = add(ctx, SLOW, slow.base_url, "slow")
        window = 3.0 / poll_module.spread_offset_s(slow_id, 1.0)  # its place: 3 s after the tick

        async def ticks():
            poller = Poller(ctx, spread_s=window)
            try:
                running, _ = await poller.start_due(system_ids=[slow_id], force=True)  # a login and a call: ~2 s
                spread = await poller.poll(system_ids=[slow_id], force=True, spread=True)
                return await asyncio.gather(*running), spread
            finally:
                await poller.aclose()

        (before,), spread = asyncio.run(ticks())
    assert before.success
    assert spread.skipped_running == [] and [o.success for o in spread.outcomes] == [True]
    assert len(sessions(ctx, slow_id)) == 2


def test_the_schedulers_minute_tick_is_spread(world):
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from wattline.jobs.scheduler import add_poll_job

    calls = []

    class Recorder:
        async def start_due(self, **kw):
            calls.append(kw)
            return [], poll_module.PollReport()

    scheduler = AsyncIOScheduler(timezone="UTC")
    add_poll_job(scheduler, Recorder())
    asyncio.run(scheduler.get_job("poll-systems").func())
    assert calls == [{"cause": "CRON", "spread": True}]


def test_a_batchs_call_logs_are_written_with_its_sessions_and_a_failing_log_write_loses_no_session(
        world, monkeypatch):
    from wattline.store import sync_logs_repo
    from wattline.store.tables import vendor_sync_logs

    ctx = world

    def calls_logged() -> int:
        with ctx.dbs.telemetry.connect() as conn:
            return len(conn.execute(select(vendor_sync_logs.c.id).where(
                vendor_sync_logs.c.sync_type == "telemetry")).all())

    with BackgroundCloud(cloud_config(FAST)) as cloud:
        ids = [add(ctx, p, cloud.base_url, f"s{i}") for i, p in enumerate(FAST)]
        assert asyncio.run(poll_once(ctx, force=True)).to_dict()["failed"] == 0
        logged = calls_logged()
        assert logged >= len(ids)  # a call at least a poll, logged beside the sessions
        assert [len(sessions(ctx, i)) for i in ids] == [1] * len(ids)

        def refuse(conn, rows):
            raise RuntimeError("the call log refused")

        monkeypatch.setattr(sync_logs_repo, "add_in", refuse)
        assert asyncio.run(poll_once(ctx, force=True)).to_dict()["failed"] == 0
    assert calls_logged() == logged  # the failed transaction wrote none of its call rows...
    assert [len(sessions(ctx, i)) for i in ids] == [2] * len(ids)  # ...and the sessions came alone
    assert [s["success"] for i in ids for s in sessions(ctx, i)] == [True] * 2 * len(ids)

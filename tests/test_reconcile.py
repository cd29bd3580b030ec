"""Reconciliation end to end: device data through the real ingest path
(``jobs.device_telemetry.ingest_documents``), a ledger gap, a tampered aggregate, a
silent controller, an out-of-order burst; review items opened once; the nightly
schedule at 02:00 local; the recalculation and re-pricing jobs over real HTTP.
On SQLite and PostgreSQL. Figures are compared with the ledger itself."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timezone

import httpx
import numpy as np
import pytest

from test_api import Server
from world import make_ctx
from wattline import provisioning
from wattline.api.app import create_app
from wattline.domain import reconcile as R
from wattline.domain import timeutil
from wattline.domain.quality import Flag
from wattline.jobs import reconcile as J
from wattline.jobs.device_telemetry import ingest_documents
from wattline.jobs.scheduler import build_scheduler, nightly_reconcile, reconcile_trigger
from wattline.security import tokens
from wattline.store import reconcile_queries as Q
from wattline.store import review_items_repo

TZ = "Asia/Kolkata"
DAY = date(2025, 11, 5)
START, END = timeutil.day_bounds(DAY, TZ)
STEP = 300  # s between a device's messages
GAP = (START + 10 * 3600, START + 10 * 3600 + 1800)  # light_1 silent 10:00-10:30 IST
HELD = (START + 14 * 3600, START + 14 * 3600 + 1200)  # fan_1's 14:00-14:20 arrive after 15:00
HEARTBEAT_UNTIL = START + 12 * 3600  # ESP01's last heartbeat: noon
DROPPED = (START + 11 * 3600, START + 11 * 3600 + 1200)  # ESP01's Last Will: offline 11:00-11:20
OFF = (START + 16 * 3600, START + 16 * 3600 + 1800)  # light_1 reports sw1 off, its counter still rising


def doc(ts: int, dev: str, seq: int, wh: float | None) -> dict:
    sw1 = not (dev == "light_1" and OFF[0] <= ts < OFF[1])
    d = {"esp32_name": "ESP01", "classroom": "CR-101", "device_id": dev, "timestamp": timeutil.iso(ts),
         "power_w": 40.0, "switch_state": {"sw1": sw1, "sw2": True}, "uptime_seconds": ts - START + 60,
         "status": "online", "sequence_no": seq, "firmware_ver": "v2.0.0", "wifi_rssi": -45}
    if wh is not None:
        d["energy_wh_total"] = wh
    return d


def _campus(ctx):
    with ctx.dbs.main.begin() as conn:
        org = provisioning.ensure_organization(conn, "campus", TZ)
        provisioning.add_classroom(conn, "CR-101", organization_id=org)
        provisioning.add_device(conn, "ESP01", "light_1", "CR-101", switch="sw1", organization_id=org)
        provisioning.add_device(conn, "ESP01", "fan_1", "CR-101", switch="sw2", method="power",
                                organization_id=org)
        utc = provisioning.ensure_organization(conn, "utc-org", "UTC")
    return org, utc


def _feed(ctx, org: int) -> None:
    """A day of both devices every 5 min, delivered hour by hour (arrival: the hour's end),
    except light_1's gap and fan_1's 14:00-14:20 held back until after 15:00."""
    by_arrival: dict[int, list[dict]] = {}
    wh = 1000.0
    for i, ts in enumerate(range(START, END, STEP)):
        wh += 3.0 + (i % 7) * 0.25  # odd increments: the sums are not trivial
        arrival = START + ((ts - START) // 3600 + 1) * 3600 + 5
        if not GAP[0] < ts < GAP[1]:
            by_arrival.setdefault(arrival, []).append(doc(ts, "light_1", i, wh))
        late = HELD[0] <= ts < HELD[1]
        by_arrival.setdefault(START + 15 * 3600 + 300 if late else arrival, []).append(doc(ts, "fan_1", i, None))
    stranger = dict(doc(START + 9 * 3600, "light_9", 1, 5.0), esp32_name="ESP09")  # not registered: kept
    by_arrival[START + 9 * 3600 + 5] = by_arrival.get(START + 9 * 3600 + 5, []) + [stranger]
    for arrival in sorted(by_arrival):
        result, errors = ingest_documents(ctx.pipeline, ctx.dbs.main_reader, org, by_arrival[arrival],
                                          source="mqtt", now=arrival)
        assert not errors and result.accepted + result.unknown_device == len(by_arrival[arrival])


def _series(ctx, org, dev, key):
    with ctx.dbs.main_reader.connect() as conn:
        return next(d for d in Q.organization_devices(conn, org) if d["device_id"] == dev)["series"][key]


def _ledger(ctx, sid):
    with ctx.dbs.telemetry.connect() as c:
        return c.exec_driver_sql(f"SELECT start_ts, end_ts, delta_milli_wh, flags FROM ledger "
                                 f"WHERE series_id = {int(sid)} ORDER BY end_ts").fetchall()


def _stored(ctx, sid, period="day", start=START):
    with ctx.dbs.telemetry.connect() as c:
        return c.exec_driver_sql(f"SELECT energy_milli_wh FROM aggregates WHERE series_id = {int(sid)} "
                                 f"AND period = '{period}' AND bucket_start = {int(start)}").scalar()


@pytest.fixture
def campus(dbs, tmp_path):
    ctx = make_ctx(dbs, tmp_path)
    org, utc = _campus(ctx)
    _feed(ctx, org)
    with ctx.dbs.telemetry.begin() as conn:
        Q.put_controller_status(conn, org, "ESP01", status="online", status_at=START,
                                last_heartbeat_at=HEARTBEAT_UNTIL)
        Q.add_status_events(conn, org, [("ESP01", START - 3600, "online"), ("ESP01", DROPPED[0], "offline"),
                                        ("ESP01", DROPPED[1], "online")])
    return ctx, org, utc


def test_a_night_is_reconciled_once_and_fixes_a_tampered_aggregate(campus):
    ctx, org, _ = campus
    counter = _series(ctx, org, "light_1", "energy_total")
    fan = _series(ctx, org, "fan_1", "power")
    ledger = _ledger(ctx, counter)
    day_energy = sum(d for _, _, d, _ in ledger)  # every entry lies inside the day
    assert _stored(ctx, counter) == day_energy
    month_start = timeutil.month_bounds(2025, 11, TZ)[0]
    month_energy = _stored(ctx, counter, "month", month_start)
    assert month_energy == day_energy  # the only day of the month with data
    with ctx.dbs.telemetry.begin() as conn:  # tamper: the day and the month disagree with the ledger
        assert Q.overwrite_bucket_energy(conn, counter, "day", START, day_energy + 12345) == 1
        assert Q.overwrite_bucket_energy(conn, counter, "month", month_start, 1) == 1

    (first,) = J.reconcile(ctx, day=DAY, organization="campus", now=END + 2 * 3600)
    assert first.devices_checked == 2 and first.days == ["2025-11-05"]
    assert dict(first.findings) == {R.GAP: 1, R.MISSING_HEARTBEAT: 2, R.OUT_OF_ORDER: 1, R.AGGREGATE_MISMATCH: 1,
                                    R.ENERGY_WHILE_OFF: 1, R.UNKNOWN_DEVICE: 1}
    assert first.buckets_rewritten == 2 and first.fixed == 2  # the mismatch and the burst
    assert first.items_opened == 5 and first.items_noted == 2
    # the buckets equal the ledger again, and the ledger was not touched
    assert _stored(ctx, counter) == day_energy and _stored(ctx, counter, "month", month_start) == day_energy
    assert _ledger(ctx, counter) == ledger

    with ctx.dbs.telemetry.connect() as conn:
        items = {(i["kind"], i["esp32_name"], i["asset_id"]): i for i in review_items_repo.list_items(
            conn, organization_id=org)}
    light = _asset(ctx, org, "light_1")
    fan_asset = _asset(ctx, org, "fan_1")
    gap = items[(R.GAP, "ESP01", light)]
    assert gap["status"] == "open" and (gap["period_start"], gap["period_end"]) == (GAP[0], GAP[1])
    assert gap["details"]["entries"] == 1 and gap["details"]["seconds"] == 1800
    silent = items[(R.MISSING_HEARTBEAT, "ESP01", light)]
    assert silent["details"]["listed"] == [[GAP[0], GAP[1]]]  # the device's own silence
    ctrl = items[(R.MISSING_HEARTBEAT, "ESP01", None)]  # the controller's: offline 11:00-11:20, silent from noon
    assert (ctrl["period_start"], ctrl["period_end"]) == (DROPPED[0], END) and ctrl["status"] == "open"
    assert ctrl["details"]["listed"] == [list(DROPPED), [HEARTBEAT_UNTIL, END]]
    burst = items[(R.OUT_OF_ORDER, "ESP01", fan_asset)]
    assert burst["status"] == "resolved" and burst["resolved_by"] == "reconcile"
    assert burst["details"]["messages"] == HELD[1] // STEP - HELD[0] // STEP
    assert (burst["period_start"], burst["period_end"]) == (HELD[0], HELD[1] - STEP + 1)
    off = items[(R.ENERGY_WHILE_OFF, "ESP01", light)]
    flagged = [(a, b, d) for a, b, d, f in ledger if f & Flag.SWITCHED_OFF]
    assert flagged and all(OFF[0] <= a and b <= OFF[1] for a, b, _ in flagged)  # the pipeline's flag, as expected
    assert off["status"] == "open" and off["details"]["entries"] == len(flagged)
    assert off["details"]["energy_milli_wh"] == sum(d for *_, d in flagged) > 0
    assert (off["period_start"], off["period_end"]) == (flagged[0][0], flagged[-1][1])
    stranger = items[(R.UNKNOWN_DEVICE, "ESP09", None)]
    assert stranger["details"]["device_id"] == "light_9" and stranger["details"]["messages"] == 1
    mismatch = items[(R.AGGREGATE_MISMATCH, "ESP01", light)]
    assert mismatch["status"] == "resolved"
    assert {(b["period"], b["columns"]["energy_milli_wh"][0]) for b in mismatch["details"]["listed"]} \
        == {("day", day_energy + 12345), ("month", 1)}
    # the burst is in the ledger in order: no gap, one entry per 5 minutes
    assert not any(f & Flag.GAP for *_, f in _ledger(ctx, fan))

    again = J.reconcile_day(ctx, {"id": org, "name": "campus", "timezone": TZ}, DAY, now=END + 3 * 3600)
    assert again.items_opened == 0 and again.items_noted == 0 and again.buckets_rewritten == 0
    with ctx.dbs.telemetry.connect() as conn:
        assert len(review_items_repo.list_items(conn, organization_id=org)) == 7


def _asset(ctx, org, dev):
    with ctx.dbs.main_reader.connect() as conn:
        return next(d for d in Q.organization_devices(conn, org) if d["device_id"] == dev)["asset_id"]


# ------------------------------------------------------------------ rules, pure


def test_energy_while_switched_off_is_found_on_flagged_entries():
    cols = {"start_ts": np.array([0, 60, 120]), "end_ts": np.array([60, 120, 180]),
            "delta": np.array([5, 7, 11]), "flags": np.array([0, int(Flag.SWITCHED_OFF), int(Flag.SWITCHED_OFF)])}
    (f,) = R.energy_while_off(cols, day="2025-11-05", asset_id=3, esp32_name="ESP01", classroom_id=1)
    assert (f.period_start, f.period_end, f.details["energy_milli_wh"], f.details["entries"]) == (60, 180, 18, 2)
    assert not f.fixable and R.dedup_key(f) == "energy_while_off:asset:3:2025-11-05"
    assert R.gaps(cols, day="d", asset_id=3, esp32_name=None, classroom_id=None) == []


def test_late_messages_are_those_behind_an_earlier_arrival():
    ts = np.array([0, 30, 60, 90, 10, 20, 120])
    rec = np.array([100, 100, 100, 100, 200, 200, 200])
    o = R.arrival_order(ts, rec)
    assert R.late_messages(ts[o], rec[o]).tolist() == [False, False, False, False, True, True, False]
    a, b = R.silent_spells(np.array([100, 200, 1000, 1100]), 0, 2000)
    assert list(zip(a.tolist(), b.tolist())) == [(200, 1000), (1100, 2000)]


# ------------------------------------------------------------------ the nightly schedule


def test_the_nightly_job_fires_at_two_local_for_kolkata_and_not_for_utc(campus, set_clock):
    ctx, org, utc = campus
    scheduler = build_scheduler(ctx)
    jobs = {j.id: j for j in scheduler.get_jobs()}
    kolkata, plain = jobs[f"reconcile-{org}"], jobs[f"reconcile-{utc}"]
    just_before = datetime(2025, 11, 5, 20, 29, tzinfo=timezone.utc)  # 01:59 IST on the 6th
    two_ist = datetime(2025, 11, 5, 20, 30, tzinfo=timezone.utc)
    assert kolkata.trigger.get_next_fire_time(None, just_before) == two_ist
    assert plain.trigger.get_next_fire_time(None, just_before) == datetime(2025, 11, 6, 2, 0, tzinfo=timezone.utc)
    assert reconcile_trigger(TZ).get_next_fire_time(None, two_ist) == two_ist
    # fired at that instant, it reconciles the Kolkata day that just ended
    set_clock(two_ist)
    job = asyncio.run(nightly_reconcile(ctx, kolkata.args[1]))
    assert job["kind"] == "reconcile" and job["status"] == "succeeded"
    (result,) = job["result"]["organizations"]
    assert result["organization"] == "campus" and result["days"] == ["2025-11-05"] and result["findings"][R.GAP] == 1
    assert job["progress"]["classrooms_done"] == job["progress"]["classrooms"] == 1
    with ctx.dbs.telemetry.connect() as conn:
        assert Q.last_reconciliation(conn)["id"] == job["id"]


# ------------------------------------------------------------------ over HTTP


@pytest.fixture
def server(campus):
    ctx, org, _ = campus
    with ctx.dbs.main.begin() as conn:
        toks = {role: tokens.create_token(conn, f"{role} token", role) for role in ("admin", "viewer")}
    with Server(create_app(ctx)) as s:
        yield s, toks, ctx, org


def _wait(url, headers, job_url):
    for _ in range(600):
        job = httpx.get(url + job_url, headers=headers, timeout=30).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        asyncio.run(asyncio.sleep(0.05))
    raise AssertionError(f"job {job_url} did not end")


def test_recalculate_over_http_is_a_job_that_reconciles_the_range(server):
    s, toks, ctx, org = server
    admin = {"Authorization": f"Bearer {toks['admin']}"}
    body = {"classroom": "CR-101", "start": "2025-11-05T00:00:00+05:30", "end": "2025-11-06T00:00:00+05:30"}
    r = httpx.post(s.url + "/api/power-analytics/recalculate", json=body, headers=admin, timeout=30)
    assert r.status_code == 202, r.text
    job = _wait(s.url, admin, r.json()["url"])
    assert job["status"] == "succeeded", job
    assert job["kind"] == "recalculate" and job["progress"]["days_done"] == job["progress"]["days"] == 1
    assert job["result"]["findings"][R.GAP] == 1 and job["result"]["items_opened"] == 4
    items = httpx.get(s.url + "/api/power-analytics/review-items?status=open&kind=gap&classroom=CR-101",
                      headers=admin, timeout=30).json()["items"]
    assert [i["kind"] for i in items] == ["gap"] and items[0]["device_id"] == "light_1"
    viewer = {"Authorization": f"Bearer {toks['viewer']}"}
    assert httpx.post(s.url + f"/api/power-analytics/review-items/{items[0]['id']}/resolve", json={"note": "ok"},
                      headers=viewer, timeout=30).status_code == 403
    done = httpx.post(s.url + f"/api/power-analytics/review-items/{items[0]['id']}/resolve",
                      json={"note": "router restarted"}, headers=admin, timeout=30)
    assert done.status_code == 200 and done.json()["status"] == "resolved"
    assert done.json()["resolution"] == "router restarted" and done.json()["resolved_by"] == "admin token"
    bad = [({"classroom": "CR-999", "start": body["start"], "end": body["end"]}, 404),
           ({"classroom": "CR-101", "start": body["end"], "end": body["start"]}, 400),
           ({"classroom": "CR-101", "start": "yesterday", "end": body["end"]}, 400),
           ({"classroom": "CR-101", "start": "99999999999999999999", "end": "99999999999999999999"}, 400),
           ({"classroom": "CR-101", "start": "2024-01-01", "end": "2025-06-01"}, 400),  # over 366 days
           ({"classroom": "CR-101", "start": body["start"], "end": body["end"], "x": 1}, 400)]
    for b, code in bad:
        r = httpx.post(s.url + "/api/power-analytics/recalculate", json=b, headers=admin, timeout=30)
        assert r.status_code == code and set(r.json()) == {"error", "code", "details"}, r.text
    assert httpx.post(s.url + "/api/power-analytics/recalculate", json=body, headers=viewer,
                      timeout=30).status_code == 403
    assert httpx.get(s.url + "/api/power-analytics/review-items?status=maybe", headers=admin,
                     timeout=30).status_code == 400
    assert httpx.post(s.url + "/api/power-analytics/review-items/99999/resolve", json={"note": "x"},
                      headers=admin, timeout=30).status_code == 404


def test_adding_a_cost_version_starts_a_recalculation_job_reporting_before_and_after(server):
    s, toks, ctx, org = server
    admin = {"Authorization": f"Bearer {toks['admin']}"}
    counter = _series(ctx, org, "light_1", "energy_total")
    fan = _series(ctx, org, "fan_1", "power")
    change = START + 12 * 3600
    first = httpx.post(s.url + "/api/power-analytics/cost-versions", headers=admin, timeout=30,
                       json={"cost_per_kwh": "7.00", "effective_from": timeutil.iso(START), "classroom": "CR-101"})
    assert first.status_code == 201 and first.json()["job"].startswith("/api/jobs/")
    job1 = _wait(s.url, admin, first.json()["job"])
    assert job1["status"] == "succeeded", job1
    r = httpx.post(s.url + "/api/power-analytics/cost-versions", headers=admin, timeout=30,
                   json={"cost_per_kwh": "9.50", "effective_from": timeutil.iso(change), "classroom": "CR-101"})
    assert r.status_code == 201, r.text
    job = _wait(s.url, admin, r.json()["job"])
    assert job["status"] == "succeeded" and job["kind"] == "recalculate", job
    p = job["progress"]
    # hand figures: the entries (or parts) after the change, priced at 7.00 and at 9.50
    parts = []
    for sid in (counter, fan):
        for a, b, d, _ in _ledger(ctx, sid):
            if b > change:
                lo = max(a, change)
                parts.append(d if a >= change else
                             int(np.rint(d * 1.0) - np.rint(d * ((lo - a) / (b - a)))))
    energy = sum(parts)
    assert p["entries_covered"] == len(parts) and p["energy_milli_wh"] == energy
    assert p["cost_before_micro"] == sum((2 * e * 7_000_000 + 10**6) // (2 * 10**6) for e in parts)
    assert p["cost_after_micro"] == sum((2 * e * 9_500_000 + 10**6) // (2 * 10**6) for e in parts)
    assert p["buckets_rewritten"] == 0 and p["currency"] == "INR"
    # adding it again: 200, and its job changes nothing either
    again = httpx.post(s.url + "/api/power-analytics/cost-versions", headers=admin, timeout=30,
                       json={"cost_per_kwh": "9.50", "effective_from": timeutil.iso(change), "classroom": "CR-101"})
    assert again.status_code == 200 and again.json()["created"] is False
    job2 = _wait(s.url, admin, again.json()["job"])
    assert job2["progress"]["cost_after_micro"] == p["cost_after_micro"]
    assert job2["progress"]["buckets_rewritten"] == 0


# ------------------------------------------------------------------ the CLI


def test_cli_reconciles_a_date_lists_and_resolves_items(sqlite_dbs, tmp_path, monkeypatch, set_clock):
    """The commands in-process (typer's runner) on the test's databases: a subprocess
    costs seconds of imports each."""
    import json

    from typer.testing import CliRunner

    from world import env_for
    from wattline.cli import app

    ctx = make_ctx(sqlite_dbs, tmp_path)
    org, _ = _campus(ctx)
    _feed(ctx, org)
    for k, v in env_for(ctx).items():
        if k.startswith("WATTLINE_") and "CLOCK" not in k:
            monkeypatch.setenv(k, v)
    set_clock(END + 3 * 3600)  # 08:30 IST on the 6th
    runner = CliRunner()

    def cli(*args):
        r = runner.invoke(app, list(args))
        assert r.exit_code == 0, r.output
        return r.stdout

    # no --date: yesterday in Asia/Kolkata is the 5th
    out = json.loads(cli("reconcile", "--organization", "campus", "--format", "json"))["organizations"]
    assert [(o["days"], o["findings"][R.GAP], o["items_opened"]) for o in out] == [(["2025-11-05"], 1, 4)]
    again = cli("reconcile", "--date", "2025-11-05", "--organization", "campus")
    assert "2 devices checked" in again and "0 review items opened" in again
    items = json.loads(cli("review", "list", "--open", "--format", "json"))["items"]
    assert sorted(i["kind"] for i in items) == [R.ENERGY_WHILE_OFF, R.GAP, R.MISSING_HEARTBEAT, R.UNKNOWN_DEVICE]
    gap = next(i for i in items if i["kind"] == R.GAP)
    assert "resolved" in cli("review", "resolve", str(gap["id"]), "--note", "a power cut")
    assert "nothing changed" in cli("review", "resolve", str(gap["id"]), "--note", "again")
    with ctx.dbs.telemetry.connect() as conn:
        item = review_items_repo.get(conn, gap["id"])
    assert (item["status"], item["resolution"]) == ("resolved", "a power cut")
    assert item["resolved_by"].startswith("cli:")
    assert runner.invoke(app, ["reconcile", "--date", "5/11/2025"]).exit_code == 2
    assert runner.invoke(app, ["reconcile", "--organization", "nowhere"]).exit_code == 2


def test_cli_cost_version_add_runs_the_recalculation_job(sqlite_dbs, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from world import env_for
    from wattline.cli import app
    from wattline.store import jobs_repo

    ctx = make_ctx(sqlite_dbs, tmp_path)
    org, _ = _campus(ctx)
    _feed(ctx, org)
    for k, v in env_for(ctx).items():
        if k.startswith("WATTLINE_") and "CLOCK" not in k:
            monkeypatch.setenv(k, v)
    r = CliRunner().invoke(app, ["cost-versions", "add", "--rate", "8.00", "--currency", "INR", "--from",
                                 timeutil.iso(START), "--group", "CR-101"])
    assert r.exit_code == 0, r.output
    counter, fan = _series(ctx, org, "light_1", "energy_total"), _series(ctx, org, "fan_1", "power")
    entries = _ledger(ctx, counter) + _ledger(ctx, fan)
    cost = sum((2 * d * 8_000_000 + 10**6) // (2 * 10**6) for *_, d, _ in entries)
    assert f"2/2 series: {len(entries)} entries covered" in r.stdout
    assert "recalculation job" in r.stdout and "succeeded" in r.stdout
    (job,) = [j for j in jobs_repo.recent(ctx.dbs.telemetry, 10) if j["kind"] == "recalculate"]
    assert job["status"] == "succeeded" and job["result"]["cost_after_micro"] == cost
    assert job["result"]["cost_before_micro"] == 0 and job["result"]["unpriced_before_milli_wh"] == sum(
        d for *_, d, _ in entries)


def test_a_controller_status_row_speaks_for_the_days_before_it_only():
    day = dict(day="2025-11-05", esp32_name="ESP01")
    assert R.controller_silence(1500, "online", 0, 0, 2000, **day) == []  # heard < 10 min before the end
    (f,) = R.controller_silence(500, "online", 0, 0, 2000, **day)
    assert (f.period_start, f.period_end) == (500, 2000)
    assert R.controller_silence(5000, "offline", 4000, 0, 2000, **day) == []  # offline only after the day
    (g,) = R.controller_silence(5000, "offline", 1500, 0, 2000, **day)
    assert (g.period_start, g.details["status"]) == (1500, "offline")
    (h,) = R.controller_silence(None, None, None, 100, 2000, **day)
    assert h.period_start == 100
    # its history: offline at the day's start until 800, and from 2000 on (a short drop 1500-1505 is no spell)
    assert R.offline_spells([(2000, "offline"), (800, "online"), (1500, "offline"), (1505, "online")], "offline",
                            0, 3000) == [[0, 800], [2000, 3000]]
    assert R.offline_spells([], None, 0, 3000) == [] and R.offline_spells([], "offline", 0, 3000) == [[0, 3000]]

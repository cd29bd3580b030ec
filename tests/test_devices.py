"""Campus devices end to end: the registry, the seed-002 payload, the HTTP ingest route
(uvicorn on loopback), unknown devices kept and replayed, redeliveries recognised —
on SQLite and PostgreSQL. Each asserts the ledger and the day's aggregate, not just
that something was stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from prometheus_client import REGISTRY

from helpers import make_sqlite
from test_api import Server
from world import make_ctx
from wattline import provisioning
from wattline.api.app import create_app
from wattline.context import AppContext
from wattline.domain import timeutil
from wattline.domain.devices import MessageKey, same_message, switch_on
from wattline.domain.quality import Flag
from wattline.jobs.device_telemetry import ingest_documents, ingest_payloads, replay_device
from wattline.pipeline import Pipeline
from wattline.security import tokens
from wattline.security.roles import may_ingest, validate_role
from wattline.sources.devices import PayloadError, TelemetryPayload, parse_document
from wattline.store import queries
from wattline.store.engines import open_databases

TZ = "Asia/Kolkata"
DAY = date(2025, 11, 5)
STEP = 300  # s between a device's messages
URL = "/api/power-analytics/telemetry"


def doc(ts: int, *, esp="ESP01", dev="light_1", wh: float | None = None, power=40.0, on=True, seq=0, uptime=0,
        classroom="CR-101", **extra) -> dict:
    """A seed-002 telemetry document at ``ts`` (UTC epoch s)."""
    d = {"esp32_name": esp, "classroom": classroom, "device_id": dev, "timestamp": timeutil.iso(ts),
         "power_w": power, "switch_state": {"sw1": on, "sw2": False}, "uptime_seconds": uptime,
         "status": "online", "sequence_no": seq, "firmware_ver": "v2.0.0", "wifi_rssi": -45}
    if wh is not None:
        d["energy_wh_total"] = wh
    d.update(extra)
    return d


@dataclass
class Campus:
    url: str
    tokens: dict[str, str]
    ctx: AppContext

    def post(self, body, role="ingest") -> httpx.Response:
        return httpx.post(self.url + URL, json=body, headers={"Authorization": f"Bearer {self.tokens[role]}"},
                          timeout=60)

    def series(self, esp="ESP01", dev="light_1") -> dict[str, int]:
        from wattline.store import device_registry

        with self.ctx.dbs.main.connect() as conn:
            return device_registry.device(conn, 1, esp, dev)["series"]

    def count(self, table: str, where: str = "") -> int:
        with self.ctx.dbs.telemetry.connect() as c:
            return c.exec_driver_sql(f"SELECT COUNT(*) FROM {table} {where}").scalar()

    def ledger(self, series_id: int) -> list[tuple]:
        with self.ctx.dbs.telemetry.connect() as c:
            return c.exec_driver_sql(
                "SELECT start_ts, end_ts, delta_milli_wh, flags FROM ledger "
                f"WHERE series_id = {int(series_id)} ORDER BY end_ts").fetchall()

    def reading_ts(self, series_id: int) -> list[int]:
        with self.ctx.dbs.telemetry.connect() as c:
            return [r[0] for r in c.exec_driver_sql(
                f"SELECT ts FROM readings WHERE series_id = {int(series_id)} ORDER BY ts")]

    def day_energy(self, series_id: int, day: date = DAY) -> queries.EnergyBucket:
        start, end = timeutil.day_bounds(day, TZ)
        (bucket,) = queries.energy_buckets(self.ctx.dbs.telemetry, series_id, "day", start, end, TZ)
        return bucket


@pytest.fixture
def campus(dbs, tmp_path):
    ctx = make_ctx(dbs, tmp_path)
    with dbs.main.begin() as conn:
        provisioning.add_classroom(conn, "CR-101", TZ)
        provisioning.add_classroom(conn, "CR-102", TZ)
        provisioning.add_device(conn, "ESP01", "light_1", "CR-101", switch="sw1")
        provisioning.add_device(conn, "ESP01", "fan_1", "CR-101", switch="sw2", method="power")
        toks = {role: tokens.create_token(conn, f"{role} token", role) for role in ("ingest", "admin", "viewer")}
    with Server(create_app(ctx)) as server:
        yield Campus(server.url, toks, ctx)


def _metric(outcome: str, source: str = "http") -> float:
    return REGISTRY.get_sample_value("wattline_device_messages_total", {"source": source, "outcome": outcome}) or 0.0


# ------------------------------------------------------------------ registry


def test_classrooms_and_devices_are_registered_with_their_points(dbs):
    with dbs.main.begin() as conn:
        org = provisioning.ensure_organization(conn, "campus", "Asia/Kolkata")
        provisioning.add_classroom(conn, "CR-101", organization_id=org)  # the organization's zone
        provisioning.add_classroom(conn, "LAB-1", "Europe/Berlin", organization_id=org)
        light = provisioning.add_device(conn, "ESP01", "light_1", "CR-101", switch="sw1", organization_id=org)
        fan = provisioning.add_device(conn, "ESP01", "fan_1", "LAB-1", method="power", organization_id=org)
        rooms = {r["name"]: r for r in provisioning.classrooms(conn, org)}
        listed = provisioning.devices(conn, org)
        in_lab = provisioning.devices(conn, org, "LAB-1")
        from wattline.store import device_registry, registry

        light_series = device_registry.device(conn, org, "ESP01", "light_1")["series"]
        fan_series = device_registry.device(conn, org, "ESP01", "fan_1")["series"]
        light_asset = registry.asset_by_id(conn, light)
    assert rooms["CR-101"]["timezone"] is None and rooms["CR-101"]["effective_timezone"] == "Asia/Kolkata"
    assert rooms["LAB-1"]["effective_timezone"] == "Europe/Berlin" and rooms["CR-101"]["devices"] == 1
    assert [(d["esp32_name"], d["device_id"], d["classroom"], d["switch_id"], d["energy_method"], d["timezone"])
            for d in listed] == [("ESP01", "fan_1", "LAB-1", None, "power", "Europe/Berlin"),
                                 ("ESP01", "light_1", "CR-101", "sw1", "counter", "Asia/Kolkata")]
    assert [d["asset_id"] for d in in_lab] == [fan]
    assert set(light_series) == {"energy_total", "power", "switch_state"}
    assert set(fan_series) == {"power", "switch_state"}  # no counter: its ledger integrates power
    assert light_asset["kind"] == "device" and light_asset["name"] == "ESP01/light_1"

    refused = [
        dict(esp32_name="ESP01", device_id="light_1", classroom="CR-101"),  # (esp32, device) taken
        dict(esp32_name="ESP01", device_id="light_2", classroom="CR-999"),  # unknown classroom
        dict(esp32_name="ESP 01", device_id="light_2", classroom="CR-101"),  # not a topic level
        dict(esp32_name="ESP01", device_id="light_2", classroom="CR-101", method="meter"),
    ]
    for kw in refused:
        with pytest.raises(provisioning.RegistryError), dbs.main.begin() as conn:
            provisioning.add_device(conn, organization_id=org, **kw)
    with pytest.raises(provisioning.RegistryError), dbs.main.begin() as conn:
        provisioning.add_classroom(conn, "CR-101", organization_id=org)
    with pytest.raises(provisioning.RegistryError), dbs.main.begin() as conn:
        provisioning.add_classroom(conn, "CR-103", "Mars/Olympus", organization_id=org)
    with dbs.main.begin() as conn:  # the same names in another organization are another device
        other = provisioning.ensure_organization(conn, "school")
        provisioning.add_classroom(conn, "CR-101", organization_id=other)
        provisioning.add_device(conn, "ESP01", "light_1", "CR-101", organization_id=other)
        assert len(provisioning.devices(conn, other)) == 1


# ------------------------------------------------------------------ payload rules


def test_the_payload_model_names_what_is_wrong():
    ok = parse_document(doc(1_762_323_154, wh=12345.67, extra_field="kept in the raw payload only"))
    assert isinstance(ok, TelemetryPayload) and ok.ts == 1_762_323_154 and ok.energy_wh_total == 12345.67
    assert parse_document({**doc(0), "timestamp": 1_762_323_154}).ts == 1_762_323_154  # epoch seconds
    cases = {
        "energy_wh_total": {**doc(0), "energy_wh_total": "lots"},
        "timestamp": {**doc(0), "timestamp": "2025-11-05T06:12:34"},  # no offset
        "device_id": {k: v for k, v in doc(0).items() if k != "device_id"},
        "switch_state": {**doc(0), "switch_state": {"sw1": "maybe"}},
        None: {"esp32_name": "ESP01", "device_id": "light_1", "timestamp": "2025-11-05T06:12:34Z"},  # no measurement
    }
    for field, d in cases.items():
        got = parse_document(d, 3)
        assert isinstance(got, PayloadError) and got.index == 3
        assert (got.field or None) == field or (field is None and "needs power_w" in got.message), got
    assert isinstance(parse_document(b"{not json"), PayloadError)
    assert isinstance(parse_document([doc(0)]), PayloadError)


def test_switch_state_and_message_identity_rules():
    assert switch_on({"sw1": True, "sw2": False}, "sw2") == 0.0
    assert switch_on({"sw1": True}, None) == 1.0 and switch_on({"sw1": True, "sw2": False}, None) is None
    assert switch_on(False, "sw1") == 0.0 and switch_on(None, "sw1") is None and switch_on({"sw3": True}, "sw1") is None
    a = MessageKey(7, 12, 3600, 1_000_000)
    assert same_message(a, MessageKey(7, 12, 3600, 1_000_002))  # re-rendered with a corrected clock
    assert not same_message(a, MessageKey(7, 13, 3600, 1_000_000))
    assert not same_message(a, MessageKey(8, 12, 3600, 1_000_000))
    # two firmware runs both send sequence 0 at uptime 5: a day apart, not one message
    assert not same_message(MessageKey(7, 0, 5, 1_000_000), MessageKey(7, 0, 5, 1_086_400))


def test_roles_allowed_to_ingest():
    assert validate_role("ingest") == "ingest"
    assert [r for r in ("ingest", "viewer", "user", "admin", "superadmin", "cron") if may_ingest(r)] == [
        "ingest", "admin", "superadmin"]


# ------------------------------------------------------------------ over HTTP


def _day_with_a_firmware_reset(reset_at: int = 150):
    """A local day of counter readings every 5 minutes, 00:00 to 24:00, with a firmware
    reset (counter back near zero, uptime and sequence restarted) at step ``reset_at``;
    the expected energy of the day in milli-Wh."""
    start, end = timeutil.day_bounds(DAY, TZ)
    steps = (end - start) // STEP
    docs, milli = [], []
    for k in range(steps + 1):
        if k < reset_at:
            wh, seq, uptime = round(12345.67 + k * 3.33, 2), 12345 + k, 86400 + k * STEP
        else:
            wh, seq, uptime = round(1.25 + (k - reset_at) * 3.33, 2), k - reset_at, 25 + (k - reset_at) * STEP
        docs.append(doc(start + k * STEP, wh=wh, seq=seq, uptime=uptime))
        milli.append(round(wh * 1000))
    expected = sum(milli[k] - milli[k - 1] if k != reset_at else milli[k] for k in range(1, steps + 1))
    return docs, expected


def test_a_day_with_a_firmware_reset_has_no_negative_energy_and_sums_exactly(campus):
    docs, expected = _day_with_a_firmware_reset()
    for a in range(0, len(docs), 100):
        r = campus.post(docs[a:a + 100])
        assert r.status_code == 200, r.text
        assert r.json() == {"documents": len(docs[a:a + 100]), "accepted": len(docs[a:a + 100]), "repeats": 0,
                            "quarantined": 0, "unknown_device": 0, "classroom_mismatches": 0,
                            "clock_drift": 0, "out_of_order": 0}
    sid = campus.series()["energy_total"]
    ledger = campus.ledger(sid)
    assert len(ledger) == len(docs) - 1
    assert all(delta >= 0 for _, _, delta, _ in ledger)
    resets = [row for row in ledger if row[3] & Flag.RESET]
    assert len(resets) == 1 and resets[0][2] == 1250  # energy after the reset counts from zero
    assert sum(delta for _, _, delta, _ in ledger) == expected
    day = campus.day_energy(sid)
    assert day.energy_milli_wh == expected and "estimated" not in day.quality
    assert campus.count("raw_events") == len(docs)
    assert campus.count("device_messages") == len(docs)


def test_the_same_document_twice_changes_nothing(campus):
    start, _ = timeutil.day_bounds(DAY, TZ)
    first = [doc(start, wh=100.0, seq=10, uptime=1000), doc(start + STEP, wh=103.33, seq=11, uptime=1300)]
    assert campus.post(first).json()["accepted"] == 2
    sid = campus.series()["energy_total"]

    def snapshot():
        return (campus.ledger(sid), campus.count("readings"), campus.count("raw_events"),
                campus.count("aggregates"), campus.day_energy(sid).energy_milli_wh)

    before = snapshot()
    again = campus.post(first[1])
    assert again.status_code == 200 and again.json()["repeats"] == 1 and again.json()["accepted"] == 0
    assert snapshot() == before
    # redelivered re-rendered (another RSSI, the clock corrected by 2 s): the same message
    rerendered = {**first[1], "timestamp": timeutil.iso(start + STEP + 2), "wifi_rssi": -70}
    assert campus.post(rerendered).json()["repeats"] == 1
    assert campus.reading_ts(sid) == [start, start + STEP]
    assert campus.ledger(sid) == before[0]
    # a firmware restart's new run (sequence 0, small uptime) is new; so is the next restart's
    restart = [doc(start + 2 * STEP, wh=0.5, seq=0, uptime=5), doc(start + 20 * STEP, wh=0.4, seq=0, uptime=5)]
    assert campus.post(restart).json()["accepted"] == 2
    assert campus.reading_ts(sid) == [start, start + STEP, start + 2 * STEP, start + 20 * STEP]
    assert all(delta >= 0 for _, _, delta, _ in campus.ledger(sid))


def test_an_invalid_document_beside_valid_ones_is_a_400_and_writes_nothing(campus):
    start, _ = timeutil.day_bounds(DAY, TZ)
    body = [doc(start, wh=1.0), {**doc(start + STEP), "energy_wh_total": "lots"}, doc(start + 2 * STEP, wh=2.0)]
    r = campus.post(body)
    assert r.status_code == 400
    e = r.json()
    assert e["code"] == "invalid_payload" and e["error"].startswith("document 1: ") and "energy_wh_total" in e["error"]
    assert e["details"]["index"] == 1 and e["details"]["field"] == "energy_wh_total"
    assert all(isinstance(x, dict) and "input" not in x for x in e["details"]["errors"])
    one = campus.post({**doc(start), "timestamp": "yesterday"})
    assert one.status_code == 400 and one.json()["details"]["field"] == "timestamp"
    assert "index" not in one.json()["details"]
    for raw in (b"{not json", b"[]", b"42"):
        bad = httpx.post(campus.url + URL, content=raw, headers={"Authorization": f"Bearer {campus.tokens['ingest']}",
                                                                  "Content-Type": "application/json"})
        assert bad.status_code == 400 and set(bad.json()) == {"error", "code", "details"}
    for table in ("raw_events", "readings", "aggregates", "device_quarantine", "device_messages"):
        assert campus.count(table) == 0, table


def test_only_ingest_and_admin_tokens_may_post(campus):
    start, _ = timeutil.day_bounds(DAY, TZ)
    assert campus.post(doc(start, wh=1.0), role="viewer").status_code == 403
    assert httpx.post(campus.url + URL, json=doc(start, wh=1.0)).status_code == 401
    assert campus.post(doc(start, wh=1.0), role="admin").status_code == 200
    assert campus.post(doc(start + STEP, wh=2.0), role="ingest").status_code == 200


def test_an_unknown_device_is_kept_then_replayed_into_the_ledger_when_registered(campus):
    start, _ = timeutil.day_bounds(DAY, TZ)
    docs = [doc(start + k * STEP, esp="ESP02", dev="light_9", wh=500.0 + 2.5 * k, seq=k, uptime=60 + k * STEP,
                classroom="CR-102", switch_state={"sw1": True}) for k in range(4)]
    before = _metric("unknown_device")
    r = campus.post(docs + [doc(start, wh=7.0)])  # beside a registered device's message
    assert r.status_code == 202
    assert r.json() == {"documents": 5, "accepted": 1, "repeats": 0, "quarantined": 0, "unknown_device": 4,
                             "classroom_mismatches": 0, "clock_drift": 0, "out_of_order": 0}
    assert _metric("unknown_device") - before == 4
    assert campus.count("device_quarantine", "WHERE kind = 'unknown_device' AND replayed_at IS NULL") == 4
    assert campus.count("raw_events") == 5  # kept exactly as it arrived
    assert campus.post(docs[1]).json()["unknown_device"] == 1  # still unknown: kept once
    assert campus.count("device_quarantine") == 4

    ctx = campus.ctx
    with ctx.dbs.main.begin() as conn:
        provisioning.add_device(conn, "ESP02", "light_9", "CR-102", switch="sw1")
    replay = replay_device(ctx.pipeline, ctx.dbs.main_reader, 1, "ESP02", "light_9")
    assert (replay.pending, replay.replayed) == (4, 4) and replay.result.accepted == 4
    sid = campus.series("ESP02", "light_9")["energy_total"]
    assert [delta for _, _, delta, _ in campus.ledger(sid)] == [2_500] * 3  # 2.5 Wh a step
    assert campus.day_energy(sid).energy_milli_wh == 7_500
    assert campus.count("device_quarantine", "WHERE replayed_at IS NULL") == 0
    assert replay_device(ctx.pipeline, ctx.dbs.main_reader, 1, "ESP02", "light_9").pending == 0
    # delivered again after the replay: recognised
    assert campus.post(docs).json() == {"documents": 4, "accepted": 0, "repeats": 4, "quarantined": 0,
                                            "unknown_device": 0, "classroom_mismatches": 0,
                                            "clock_drift": 0, "out_of_order": 0}
    assert [delta for _, _, delta, _ in campus.ledger(sid)] == [2_500] * 3


def test_the_registry_decides_the_classroom(campus):
    start, _ = timeutil.day_bounds(DAY, TZ)
    r = campus.post([doc(start, wh=10.0, classroom="CR-102"), doc(start + STEP, wh=11.0, classroom="CR-102")])
    assert r.status_code == 200 and r.json()["classroom_mismatches"] == 2 and r.json()["accepted"] == 2
    light = campus.series()["energy_total"]
    assert campus.ledger(light)[0][2] == 1_000  # 1 Wh  # in light_1's ledger, of CR-101
    with campus.ctx.dbs.main.connect() as conn:
        assert provisioning.devices(conn, classroom="CR-102") == []
        assert [d["device_id"] for d in provisioning.devices(conn, classroom="CR-101")] == ["fan_1", "light_1"]


def test_power_devices_and_far_future_clocks(campus, set_clock):
    start, _ = timeutil.day_bounds(DAY, TZ)
    set_clock(start + 86400)
    fan = [doc(start + k * STEP, dev="fan_1", power=60.0, switch_state={"sw2": True}, seq=k, uptime=k * STEP)
           for k in range(3)]
    assert campus.post(fan).json()["accepted"] == 3
    series = campus.series("ESP01", "fan_1")
    with campus.ctx.dbs.telemetry.connect() as c:
        states = c.exec_driver_sql(f"SELECT value FROM readings WHERE series_id = {series['switch_state']}").fetchall()
        powers = c.exec_driver_sql(f"SELECT value FROM readings WHERE series_id = {series['power']}").fetchall()
    assert [s[0] for s in states] == [1.0, 1.0, 1.0] and [p[0] for p in powers] == pytest.approx([0.06] * 3)  # kW
    assert [delta for _, _, delta, _ in campus.ledger(series["power"])] == [5_000, 5_000]  # 60 W x 5 min = 5 Wh
    far = campus.post(doc(start + 3 * 86400, wh=1.0))
    assert far.status_code == 202 and far.json()["quarantined"] == 1
    assert campus.count("device_quarantine", "WHERE kind = 'future'") == 1


def test_a_receiver_that_cannot_refuse_keeps_invalid_documents_with_the_reason(campus):
    start, _ = timeutil.day_bounds(DAY, TZ)
    ctx = campus.ctx
    good = json.dumps(doc(start, wh=5.0)).encode()
    bad = [b'{"esp32_name": "ESP01", "device_id": "light_1"}', b"\xff not json"]
    result, errors = ingest_documents(ctx.pipeline, ctx.dbs.main_reader, 1, [bad[0], good, bad[1]], source="mqtt")
    assert [e.index for e in errors] == [0, 2] and result.accepted == 1
    assert campus.count("device_quarantine", "WHERE kind = 'invalid'") == 2
    assert campus.count("raw_events") == 3  # every message is a raw event, the invalid ones too
    assert _metric("invalid", "mqtt") >= 2


# ------------------------------------------------------------------ the CLI


def test_the_cli_registers_lists_and_replays(tmp_path):
    env = {**os.environ, "WATTLINE_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"}  # tables unwrapped
    env.pop("WATTLINE_MAIN_URL", None)
    env.pop("WATTLINE_TELEMETRY_URL", None)

    def run(*args, check=True):
        p = subprocess.run([sys.executable, "-m", "wattline.cli", *args], env=env, capture_output=True, text=True,
                           timeout=120)
        if check and p.returncode != 0:
            raise AssertionError(f"wattline {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
        return p

    run("classrooms", "add", "CR-101", "--timezone", TZ)
    run("classrooms", "add", "CR-102")
    listed = run("classrooms", "list").stdout
    assert "CR-101" in listed and TZ in listed and "organization's" in listed

    data = tmp_path / "data"
    dbs = open_databases(f"sqlite:///{data / 'main.db'}", f"sqlite:///{data / 'telemetry.db'}")
    start, _ = timeutil.day_bounds(DAY, TZ)
    docs = [doc(start + k * STEP, wh=10.0 + k, seq=k, uptime=k * STEP) for k in range(3)]
    payloads = [parse_document(d) for d in docs]
    kept = ingest_payloads(Pipeline(dbs.telemetry, dbs.main_reader), dbs.main_reader, 1, payloads, docs, source="test")
    assert kept.unknown_device == 3

    out = run("devices", "add", "ESP01", "light_1", "--classroom", "CR-101", "--switch", "sw1").stdout
    assert "replayed 3 of 3 kept messages" in out
    dup = run("devices", "add", "ESP01", "light_1", "--classroom", "CR-101", check=False)
    assert dup.returncode == 2 and "already registered" in dup.stderr
    nowhere = run("devices", "add", "ESP01", "fan_1", "--classroom", "CR-999", check=False)
    assert nowhere.returncode == 2 and "unknown classroom" in nowhere.stderr
    devices = run("devices", "list").stdout
    assert "ESP01" in devices and "light_1" in devices and "sw1" in devices and "counter" in devices

    from wattline.store import device_registry

    with dbs.main_reader.connect() as conn:
        sid = device_registry.device(conn, 1, "ESP01", "light_1")["series"]["energy_total"]
    with dbs.telemetry.connect() as c:
        deltas = [r[0] for r in c.exec_driver_sql(
            f"SELECT delta_milli_wh FROM ledger WHERE series_id = {sid} ORDER BY end_ts")]
    dbs.dispose()
    assert deltas == [1_000, 1_000]  # 1 Wh a step


# ------------------------------------------------------------------ fuzzing the route with an ingest token

INGEST_SCHEMA = schemathesis.openapi.from_dict(create_app().openapi()).include(path=URL)


@pytest.fixture(scope="module")
def ingest_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ingest-fuzz")
    dbs = make_sqlite(tmp)
    ctx = make_ctx(dbs, tmp)
    with dbs.main.begin() as conn:
        provisioning.add_classroom(conn, "CR-101", TZ)
        provisioning.add_device(conn, "ESP01", "light_1", "CR-101", switch="sw1")
        token = tokens.create_token(conn, "fuzz", "ingest")
    with Server(create_app(ctx)) as server:
        yield server.url, token
    dbs.dispose()


@INGEST_SCHEMA.parametrize()
@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_ingest_route_answers_as_documented_under_fuzzing(ingest_server, case):
    """Valid documents (of unknown devices, mostly) are 200/202 with the counts,
    invalid ones a 400 in the error shape; never a server error."""
    url, token = ingest_server
    case.call_and_validate(base_url=url, headers={"Authorization": f"Bearer {token}"})

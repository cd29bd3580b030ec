"""Controller status and heartbeats end to end, with a test-owned Mosquitto: the Last Will
when a controller's connection dies (a real paho client in a process that is killed),
the retained status seen by an ingester that starts late, heartbeats, invalid status
kept with the reason, auto-registration on and off, the health report's numbers, and
``wattline serve`` running the ingester."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import httpx
import paho.mqtt.client as mqtt
import pytest
from mqtt_broker import free_port, mqtt_broker  # noqa: F401 - the fixture
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import REGISTRY
from test_api import Server
from test_devices import DAY, STEP, TZ, doc
from world import env_for, make_ctx

from wattline import provisioning
from wattline.api.app import create_app
from wattline.domain import controller_status as rules
from wattline.domain import timeutil
from wattline.domain.quality import Flag
from wattline.jobs.controller_status import controller_states, history
from wattline.jobs.mqtt_ingest import MqttIngest
from wattline.security import tokens
from wattline.sources.mqtt import ConsumerConfig, Message, MqttConsumer, parse_broker_url
from wattline.store import device_registry, org_settings_repo, queries

PREFIX = "autovolt"


def _wait(predicate, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _rows(ctx, sql: str):
    with ctx.dbs.telemetry.connect() as c:
        return c.exec_driver_sql(sql).fetchall()


class Ingester:
    """The ingester's consumer and handler in a thread of the test (``wattline mqtt`` minus the CLI)."""

    def __init__(self, ctx, url: str, client_id: str = "status-test-ingest"):
        self.ingest = MqttIngest(ctx.pipeline, ctx.dbs.main_reader, 1, ctx.dbs.main)
        self.consumer = MqttConsumer(ConsumerConfig(broker=parse_broker_url(url), client_id=client_id, max_wait_s=0.05),
                                     self.ingest.handle, self.ingest.reject)
        self.stop = threading.Event()
        self.consumer.start(timeout_s=20)
        self.thread = threading.Thread(target=self.consumer.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(20)


def _publisher(port: int, client_id: str = "status-test-publisher") -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def _publish(client: mqtt.Client, esp: str, kind: str, payload, retain: bool = False) -> None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    client.publish(f"{PREFIX}/{esp}/{kind}", body, qos=1, retain=retain).wait_for_publish(10)


# a controller in its own process: connects with its Last Will, says online (retained),
# sends heartbeats, and waits to be killed
CONTROLLER = r"""
import json, sys, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
port, esp = int(sys.argv[1]), sys.argv[2]
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ctl-" + esp)
c.will_set(f"autovolt/{esp}/status", json.dumps({"esp32_name": esp, "classroom": "CR-101", "status": "offline"}),
           qos=1, retain=True)
c.connect("127.0.0.1", port, keepalive=5)
c.loop_start()
c.publish(f"autovolt/{esp}/status", json.dumps({"esp32_name": esp, "status": "online", "firmware_ver": "v2.1.0"}),
          qos=1, retain=True).wait_for_publish(10)
c.publish(f"autovolt/{esp}/heartbeat", json.dumps({"esp32_name": esp, "uptime_seconds": 31, "wifi_rssi": -61,
          "firmware_ver": "v2.1.0", "status": "online"}), qos=1).wait_for_publish(10)
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def test_the_last_will_marks_a_killed_controller_offline_and_keeps_the_spell(sqlite_dbs, tmp_path, mqtt_broker):  # noqa: F811
    ctx = make_ctx(sqlite_dbs, tmp_path)
    ing = Ingester(ctx, mqtt_broker.url)
    proc = subprocess.Popen([sys.executable, "-c", CONTROLLER, str(mqtt_broker.port), "ESP07"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert _wait(lambda: _rows(ctx, "SELECT last_heartbeat_at FROM controller_status")[0:1] != []
                     and _rows(ctx, "SELECT last_heartbeat_at FROM controller_status")[0][0] is not None)
        online = controller_states(ctx.dbs.telemetry, 1)["ESP07"]
        assert online.status == "online" and online.online
        assert online.details["firmware_ver"] == "v2.1.0" and online.details["wifi_rssi"] == -61
        proc.send_signal(signal.SIGKILL)  # the TCP connection dies: the broker publishes the will
        proc.wait(10)
        assert _wait(lambda: _rows(ctx, "SELECT status FROM controller_status") == [("offline",)])
    finally:
        if proc.poll() is None:
            proc.kill()
        ing.close()
    state = controller_states(ctx.dbs.telemetry, 1)["ESP07"]
    assert not state.online and state.status == "offline"
    events = history(ctx.dbs.telemetry, 1, "ESP07")
    assert [e.status for e in events] == ["online", "offline"]
    (spell,) = rules.offline_spells(events)
    assert spell.start == events[1].ts and spell.end is None
    # raw events: the online status, the heartbeat, the will, each once
    assert sorted(_rows(ctx, "SELECT source FROM raw_events")) == [("mqtt:heartbeat",), ("mqtt:status",),
                                                                    ("mqtt:status",)]


def test_a_late_ingester_sees_the_retained_status_and_a_restart_adds_no_event(sqlite_dbs, tmp_path, mqtt_broker):  # noqa: F811
    ctx = make_ctx(sqlite_dbs, tmp_path)
    pub = _publisher(mqtt_broker.port)
    _publish(pub, "ESP02", "status", b"online", retain=True)  # plain text
    _publish(pub, "ESP03", "status", {"esp32_name": "ESP03", "status": "offline"}, retain=True)
    pub.disconnect()
    ing = Ingester(ctx, mqtt_broker.url, client_id="late-ingester")
    try:
        assert _wait(lambda: len(_rows(ctx, "SELECT * FROM controller_status")) == 2)
    finally:
        ing.close()
    assert dict(_rows(ctx, "SELECT esp32_name, status FROM controller_status")) == {"ESP02": "online",
                                                                                    "ESP03": "offline"}
    # another ingester subscribing anew gets the retained messages again: no new event
    ing = Ingester(ctx, mqtt_broker.url, client_id="another-ingester")
    try:
        assert _wait(lambda: len(_rows(ctx, "SELECT * FROM raw_events")) == 2
                     and ing.consumer.stats.handled >= 2)
    finally:
        ing.close()
    assert len(_rows(ctx, "SELECT * FROM controller_status_events")) == 2


def _message(payload: bytes, kind: str, at: float, esp: str = "ESP01") -> Message:
    return Message(topic=f"{PREFIX}/{esp}/{kind}", payload=payload, mid=1, received_at=at, retain=False,
                   esp32_name=esp, kind=kind)


def test_heartbeats_and_telemetry_keep_a_controller_online_until_three_are_missed(dbs, tmp_path):
    ctx = make_ctx(dbs, tmp_path)
    ing = MqttIngest(ctx.pipeline, ctx.dbs.main_reader, 1, ctx.dbs.main)
    t0 = 1_762_300_000
    ing.handle([_message(b'{"status": "online"}', "status", t0)])
    ing.handle([_message(json.dumps({"uptime_seconds": s, "wifi_rssi": -40 - s // 30, "firmware_ver": "v2"}).encode(),
                         "heartbeat", t0 + s) for s in (30, 60, 90)])
    ing.handle([_message(json.dumps({"uptime_seconds": 45, "wifi_rssi": -99}).encode(), "heartbeat", t0 + 45)])  # late
    state = controller_states(ctx.dbs.telemetry, 1, now=t0 + 90)["ESP01"]
    assert state.last_heartbeat_at == t0 + 90 and state.details["wifi_rssi"] == -43
    assert state.details["uptime_seconds"] == 90 and state.online
    assert controller_states(ctx.dbs.telemetry, 1, now=t0 + 90 + 90)["ESP01"].online
    assert not controller_states(ctx.dbs.telemetry, 1, now=t0 + 90 + 91)["ESP01"].online  # 3 heartbeats missed
    # the same status again (a redelivery, the retained message seen anew) is no change
    ing.handle([_message(b'{"status": "online"}', "status", t0 + 100)])
    assert [(e.ts, e.status) for e in history(ctx.dbs.telemetry, 1, "ESP01")] == [(t0, "online")]
    assert controller_states(ctx.dbs.telemetry, 1, now=t0 + 100)["ESP01"].status_at == t0 + 100  # last said


def test_invalid_status_and_heartbeats_are_kept_with_the_reason_and_do_not_stop_the_ingester(
        sqlite_dbs, tmp_path, mqtt_broker):  # noqa: F811
    ctx = make_ctx(sqlite_dbs, tmp_path)
    before = REGISTRY.get_sample_value("wattline_controller_messages_total",
                                       {"source": "mqtt", "kind": "status", "outcome": "invalid"}) or 0.0
    ing = Ingester(ctx, mqtt_broker.url)
    pub = _publisher(mqtt_broker.port)
    try:
        _publish(pub, "ESP04", "status", b"sleeping")
        _publish(pub, "ESP04", "heartbeat", b'{"wifi_rssi": "strong"}')
        _publish(pub, "ESP04", "status", {"esp32_name": "ESP05", "status": "online"})  # another controller's name
        _publish(pub, "ESP04", "status", b"ONLINE")
        assert _wait(lambda: _rows(ctx, "SELECT status FROM controller_status") == [("online",)])
        assert _wait(lambda: len(_rows(ctx, "SELECT * FROM device_quarantine")) == 3)
    finally:
        pub.disconnect()
        ing.close()
    kept = _rows(ctx, "SELECT kind, esp32_name, source, reason FROM device_quarantine ORDER BY source, reason")
    assert [(k, e, s) for k, e, s, _ in kept] == [("invalid", "ESP04", "mqtt:heartbeat"),
                                                   ("invalid", "ESP04", "mqtt:status"),
                                                   ("invalid", "ESP04", "mqtt:status")]
    reasons = [r for *_, r in kept]
    assert "wifi_rssi" in reasons[0]
    assert sorted(("online, offline" in r, "differs from the topic" in r) for r in reasons[1:]) == [
        (False, True), (True, False)]
    assert REGISTRY.get_sample_value("wattline_controller_messages_total",
                                     {"source": "mqtt", "kind": "status", "outcome": "invalid"}) == before + 2


# ------------------------------------------------------------------ auto-registration


def _counter_day(esp: str, dev: str, steps: int = 12) -> tuple[list[dict], int]:
    start, _ = timeutil.day_bounds(DAY, TZ)
    docs = [doc(start + k * STEP, esp=esp, dev=dev, wh=round(100.0 + 2.5 * k, 2), seq=k, uptime=600 + k * STEP,
                classroom="CR-205") | {"switch_state": {"sw3": True}} for k in range(steps)]
    return docs, round(docs[-1]["energy_wh_total"] * 1000) - round(docs[0]["energy_wh_total"] * 1000)


def _day_energy(ctx, series_id: int) -> int:
    start, end = timeutil.day_bounds(DAY, TZ)
    (bucket,) = queries.energy_buckets(ctx.dbs.telemetry, series_id, "day", start, end, TZ)
    return bucket.energy_milli_wh


def test_auto_registration_off_keeps_unknown_devices_and_on_registers_and_replays_them(dbs, tmp_path, set_clock):
    set_clock(timeutil.day_bounds(DAY, TZ)[1] + 600)
    ctx = make_ctx(dbs, tmp_path)
    with dbs.main.begin() as conn:
        org = provisioning.ensure_organization(conn)
        conn.exec_driver_sql(f"UPDATE organizations SET timezone = '{TZ}' WHERE id = {org}")
    ing = MqttIngest(ctx.pipeline, ctx.dbs.main_reader, org, ctx.dbs.main)
    docs, expected = _counter_day("ESP20", "light_9")
    power_docs = [{k: v for k, v in d.items() if k != "energy_wh_total"} | {"device_id": "fan_9", "power_w": 60.0}
                  for d in docs]
    half = len(docs) // 2
    ing.handle([_message(json.dumps(d).encode(), "telemetry", 0, "ESP20") for d in docs[:half]])
    assert dict(_rows(ctx, "SELECT kind, COUNT(*) FROM device_quarantine GROUP BY kind")) == {"unknown_device": half}
    with dbs.main.connect() as conn:
        assert device_registry.device(conn, org, "ESP20", "light_9") is None

    with dbs.main.begin() as conn:
        org_settings_repo.set_auto_register_devices(conn, org, True)
    ing.handle([_message(json.dumps(d).encode(), "telemetry", 0, "ESP20") for d in docs[half:] + power_docs])
    with dbs.main.connect() as conn:
        light = device_registry.device(conn, org, "ESP20", "light_9")
        fan = device_registry.device(conn, org, "ESP20", "fan_9")
        room = device_registry.classroom(conn, org, "CR-205")
    assert light["classroom"] == "CR-205" and light["energy_method"] == "counter" and light["switch_id"] == "sw3"
    assert fan["energy_method"] == "power" and "energy_total" not in fan["series"]
    assert room["timezone"] is None and room["effective_timezone"] == TZ  # the organization's zone
    # every reading in the ledger, the ones kept while it was off replayed: the whole day's energy
    assert _day_energy(ctx, light["series"]["energy_total"]) == expected
    assert _rows(ctx, "SELECT COUNT(*) FROM device_quarantine WHERE replayed_at IS NULL") == [(0,)]
    # 60 W for 11 steps of 5 minutes = 55 Wh
    assert _day_energy(ctx, fan["series"]["power"]) == 60 * (len(docs) - 1) * STEP * 1000 // 3600


# ------------------------------------------------------------------ the health report over HTTP


def test_the_health_report_counts_events_devices_ledger_and_resets(dbs, tmp_path, set_clock):
    start, _ = timeutil.day_bounds(DAY, TZ)
    now = start + 3600 * 2
    set_clock(now)
    ctx = make_ctx(dbs, tmp_path)
    with dbs.main.begin() as conn:
        provisioning.add_classroom(conn, "CR-101", TZ)
        provisioning.add_device(conn, "ESP01", "light_1", "CR-101", switch="sw1")
        provisioning.add_device(conn, "ESP02", "light_1", "CR-101", switch="sw1")
        viewer = tokens.create_token(conn, "viewer", "viewer")
        ingest = tokens.create_token(conn, "ingest", "ingest")
    # ESP01: 12 readings with a firmware reset at the 7th; ESP02: offline; ESP99: unknown device, heard (online)
    docs = [doc(start + k * STEP, wh=(50.0 + k) if k < 6 else (0.5 + k - 6), seq=k if k < 6 else k - 6,
                uptime=(9000 + k * STEP) if k < 6 else (10 + (k - 6) * STEP)) for k in range(12)]
    docs.append(doc(start, esp="ESP99", wh=1.0))
    h = {"Authorization": f"Bearer {ingest}"}
    with Server(create_app(ctx)) as server:
        assert httpx.post(server.url + "/api/power-analytics/telemetry", json=docs, headers=h).status_code == 202
        r = httpx.post(server.url + "/api/power-analytics/status",
                       json=[{"esp32_name": "ESP01", "status": "online"}, {"esp32_name": "ESP02", "status": "offline"}],
                       headers=h)
        assert r.status_code == 200 and r.json() == {"documents": 2, "statuses": 2, "heartbeats": 0,
                                                     "status_changes": 2}
        hb = httpx.post(server.url + "/api/power-analytics/heartbeat",
                        json={"esp32_name": "ESP01", "wifi_rssi": -50, "firmware_ver": "v3"}, headers=h)
        assert hb.status_code == 200 and hb.json()["heartbeats"] == 1
        bad = httpx.post(server.url + "/api/power-analytics/status", json={"esp32_name": "ESP01", "status": "maybe"},
                         headers=h)
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_payload"
        assert bad.json()["details"]["field"] == "status"
        assert httpx.get(server.url + "/api/power-analytics/health").status_code == 401
        report = httpx.get(server.url + "/api/power-analytics/health",
                           headers={"Authorization": f"Bearer {viewer}"}).json()
        metrics = httpx.get(server.url + "/metrics").text
        device = httpx.get(server.url + "/api/power-analytics/devices/ESP01/light_1",
                           headers={"Authorization": f"Bearer {viewer}"}, params={"days": 3}).json()
        missing = httpx.get(server.url + "/api/power-analytics/devices/ESP01/nope",
                            headers={"Authorization": f"Bearer {viewer}"})
    assert report["telemetry"] == {"total_events": 13, "unprocessed_events": 1, "events_last_hour": 13,
                                   "online_devices": 1, "online_controllers": 2, "offline_controllers": 1,
                                   "unprocessed_by_kind": {"unknown_device": 1}}
    with ctx.dbs.main.connect() as conn:
        sid = device_registry.device(conn, 1, "ESP01", "light_1")["series"]["energy_total"]
    resets = _rows(ctx, f"SELECT COUNT(*) FROM readings WHERE series_id = {sid} AND (flags & {int(Flag.RESET)}) != 0")
    assert resets == [(1,)]
    assert report["ledger"] == {"events_processed": 12, "entries_created": 11, "resets_detected": 1, "errors": 0,
                                "is_processing": False}
    assert report["aggregation"]["kind"] == "ingest"  # the pipeline aggregates at ingest; the clock ticks on
    assert 0 <= timeutil.parse_instant(report["aggregation"]["last_run"]) - now < 60
    assert report["reconciliation"]["last_run"] is None and report["status"] == "healthy"
    assert 'wattline_controllers{state="online"} 2.0' in metrics, [m for m in metrics.splitlines() if 'controllers' in m]
    assert 'wattline_controllers{state="offline"} 1.0' in metrics
    assert device["status"]["online"] and device["status"]["firmware_ver"] == "v3"
    assert device["status"]["wifi_rssi"] == -50 and [d["date"] for d in device["days"]] == [
        "2025-11-03", "2025-11-04", "2025-11-05"]
    # 5 Wh before the reset, 5.5 after it (the reset's entry counts from zero)
    assert device["days"][-1]["energy_kwh"] == pytest.approx(
        _day_energy(ctx, sid) / 1e6) and _day_energy(ctx, sid) == 5000 + 500 + 5000
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


# ------------------------------------------------------------------ wattline serve runs the ingester


def test_serve_with_a_broker_url_ingests_mqtt_and_stops_cleanly(sqlite_dbs, tmp_path, mqtt_broker):  # noqa: F811
    ctx = make_ctx(sqlite_dbs, tmp_path)
    with sqlite_dbs.main.begin() as conn:
        provisioning.add_classroom(conn, "CR-101", TZ)
        provisioning.add_device(conn, "ESP01", "light_1", "CR-101", switch="sw1")
        sid = device_registry.device(conn, 1, "ESP01", "light_1")["series"]["energy_total"]
    start, _ = timeutil.day_bounds(DAY, TZ)
    docs = [doc(start + k * STEP, wh=10.0 + k, seq=k, uptime=100 + k * STEP) for k in range(5)]
    log = tmp_path / "serve.log"
    port = free_port()
    env = {**env_for(ctx), "WATTLINE_MQTT_URL": mqtt_broker.url, "WATTLINE_CLOCK": timeutil.iso(start + 3600)}
    proc = subprocess.Popen([sys.executable, "-m", "wattline.cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        assert _wait(lambda: "mqtt.subscribed" in log.read_text() or proc.poll() is not None, 60), log.read_text()
        assert proc.poll() is None, log.read_text()
        pub = _publisher(mqtt_broker.port)
        for d in docs:
            _publish(pub, "ESP01", "telemetry", d)
        _publish(pub, "ESP01", "status", b"online", retain=True)
        pub.disconnect()
        assert _wait(lambda: _rows(ctx, f"SELECT COUNT(*) FROM readings WHERE series_id = {sid}") == [(5,)]
                     and _rows(ctx, "SELECT status FROM controller_status") == [("online",)], 30), log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    # uvicorn re-raises the SIGTERM it handled once shut down (as plain ``serve`` does): a clean exit
    # is the ingester's batch acknowledged and the application's shutdown complete
    assert code in (0, -signal.SIGTERM), log.read_text()[-3000:]
    text = log.read_text()
    assert "mqtt.stopped" in text and text.index("mqtt.stopped") < text.index("Application shutdown complete")
    assert _day_energy(ctx, sid) == 4000
    assert _rows(ctx, "SELECT last_telemetry_at IS NOT NULL FROM controller_status") == [(1,)]


# ------------------------------------------------------------------ the pure rules


def test_the_online_rule_and_the_spells():
    w = rules.window_s()
    assert w == 90
    assert rules.is_online("online", 1000, None, 1000 + w) and not rules.is_online("online", 1000, None, 1001 + w)
    assert rules.is_online("online", None, 1000, 1000 + w)  # telemetry counts as being heard
    assert not rules.is_online("offline", 1000, 1000, 1000)  # the Last Will wins while it stands
    assert rules.is_online(None, 1000, None, 1010)  # never announced (HTTP): heard is enough
    assert not rules.is_online("online", None, None, 1000)
    E = rules.StatusEvent
    events = [E(10, "online"), E(50, "offline"), E(60, "offline"), E(90, "online"), E(200, "offline")]
    assert rules.spells(events) == [rules.Spell("online", 10, 50), rules.Spell("offline", 50, 90),
                                    rules.Spell("online", 90, 200), rules.Spell("offline", 200, None)]
    assert [s.duration_s for s in rules.offline_spells(events)] == [40, None]
    assert rules.is_change(None, "online") and not rules.is_change(E(1, "online"), "online")


def test_an_older_arrival_goes_into_the_history_but_not_into_the_latest_state(sqlite_dbs, tmp_path):
    ctx = make_ctx(sqlite_dbs, tmp_path)
    ing = MqttIngest(ctx.pipeline, ctx.dbs.main_reader, 1)
    ing.handle([_message(b"online", "status", 100), _message(b"online", "status", 300)])
    ing.handle([_message(b"offline", "status", 200)])  # another ingester's, late
    assert [(e.ts, e.status) for e in history(ctx.dbs.telemetry, 1, "ESP01")] == [
        (100, "online"), (200, "offline"), (300, "online")]
    state = controller_states(ctx.dbs.telemetry, 1, now=300)["ESP01"]
    assert (state.status, state.status_at) == ("online", 300)


def test_wattline_orgs_set_switches_auto_registration(sqlite_dbs, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from wattline.cli import app

    ctx = make_ctx(sqlite_dbs, tmp_path)
    for k, v in env_for(ctx).items():  # the CLI's settings come from the environment
        if k.startswith("WATTLINE_"):
            monkeypatch.setenv(k, v)
    runner = CliRunner()

    def setting() -> bool:
        with sqlite_dbs.main.connect() as conn:
            return org_settings_repo.auto_register_devices(conn, 1)

    assert runner.invoke(app, ["orgs", "set", "--auto-register-devices", "on"]).exit_code == 0 and setting()
    bad = runner.invoke(app, ["orgs", "set", "--auto-register-devices", "maybe"])
    assert bad.exit_code == 2 and "on or off" in bad.output and setting()  # nothing changed
    assert runner.invoke(app, ["orgs", "set", "--auto-register-devices", "off", "--organization", "nope"]).exit_code == 2
    assert setting()
    assert runner.invoke(app, ["orgs", "set", "--auto-register-devices", "off"]).exit_code == 0 and not setting()
    listed = runner.invoke(app, ["orgs", "list"])
    assert listed.exit_code == 0 and "default" in listed.output

"""``wattline mqtt`` end to end on SQLite and PostgreSQL: a test-owned Mosquitto, the ingester as a
subprocess, seed-002 documents published at QoS 1 (a firmware reset among them), an
invalid payload and an unregistered device kept with their reasons, a kill -9 while
publishing and a restart with the same client id: every reading exactly once, the
day's energy exact."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from mqtt_broker import mqtt_broker  # noqa: F401 - the fixture
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import REGISTRY
from test_devices import DAY, STEP, TZ, _day_with_a_firmware_reset, doc
from world import env_for, make_ctx

from wattline import provisioning
from wattline.domain import timeutil
from wattline.jobs import mqtt_ingest
from wattline.jobs.mqtt_ingest import MqttIngest
from wattline.sources.mqtt import HandlerUnavailable, Message
from wattline.store import device_registry, queries

CLIENT_ID = "wattline-ingest-test"


def _fan_day(steps: int = 150) -> tuple[list[dict], int]:
    """A second device's counter readings from local midnight, no reset; milli-Wh expected."""
    start, _ = timeutil.day_bounds(DAY, TZ)
    docs = [doc(start + k * STEP, dev="fan_1", wh=round(500.5 + k * 1.71, 2), seq=7 + k, uptime=900 + k * STEP,
                on=False) | {"switch_state": {"sw1": False, "sw2": True}} for k in range(steps)]
    return docs, round(docs[-1]["energy_wh_total"] * 1000) - round(docs[0]["energy_wh_total"] * 1000)


class Publisher:
    def __init__(self, port: int):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-publisher")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.infos: list[mqtt.MQTTMessageInfo] = []

    def send(self, esp: str, payload: bytes) -> None:
        self.infos.append(self.client.publish(f"autovolt/{esp}/telemetry", payload, qos=1))

    def wait_all(self, timeout_s: float = 30) -> None:
        for info in self.infos:
            info.wait_for_publish(timeout_s)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _start_ingester(ctx, url: str, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "wattline.cli", "mqtt", "--broker", url, "--client-id", CLIENT_ID,
                             "--max-batch", "50"], env=env_for(ctx), stdout=subprocess.DEVNULL,
                            stderr=log.open("a"))
    assert _wait(lambda: "subscribed" in log.read_text() or proc.poll() is not None, 60), log.read_text()
    assert proc.poll() is None, log.read_text()
    return proc


def _wait(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _scalar(ctx, sql: str):
    with ctx.dbs.telemetry.connect() as c:
        return c.exec_driver_sql(sql).scalar()


def test_the_ingester_stores_every_reading_once_across_a_kill(dbs, tmp_path, mqtt_broker):  # noqa: F811 - the fixture
    ctx = make_ctx(dbs, tmp_path)
    with dbs.main.begin() as conn:
        provisioning.add_classroom(conn, "CR-101", TZ)
        provisioning.add_device(conn, "ESP01", "light_1", "CR-101", switch="sw1")
        provisioning.add_device(conn, "ESP01", "fan_1", "CR-101", switch="sw2")
        light = device_registry.device(conn, 1, "ESP01", "light_1")["series"]["energy_total"]
        fan = device_registry.device(conn, 1, "ESP01", "fan_1")["series"]["energy_total"]
    light_docs, light_expected = _day_with_a_firmware_reset()
    fan_docs, fan_expected = _fan_day()
    stream = [d for pair in zip(light_docs, fan_docs) for d in pair] + light_docs[len(fan_docs):]
    half = len(stream) // 2
    log = tmp_path / "ingester.log"

    def readings(sid: int) -> int:
        return _scalar(ctx, f"SELECT COUNT(*) FROM readings WHERE series_id = {int(sid)}")

    def all_in(n_light: int, n_fan: int) -> bool:
        return readings(light) >= n_light and readings(fan) >= n_fan

    proc = _start_ingester(ctx, mqtt_broker.url, log)
    pub = Publisher(mqtt_broker.port)
    try:
        for d in stream[:half]:
            pub.send(d["esp32_name"], json.dumps(d).encode())
        pub.send("ESP01", b'{"esp32_name": "ESP01", "not": "telemetry"')
        pub.send("ESP99", json.dumps(doc(timeutil.day_bounds(DAY, TZ)[0],
                                         esp="ESP99", wh=1.0)).encode())
        pub.wait_all()
        first_light = sum(1 for d in stream[:half] if d["device_id"] == "light_1")
        assert _wait(lambda: all_in(first_light, half - first_light), 60), log.read_text()[-3000:]
        assert _wait(lambda: _scalar(ctx, "SELECT COUNT(*) FROM device_quarantine") == 2, 20)
        with ctx.dbs.telemetry.connect() as c:
            kept = dict(c.exec_driver_sql("SELECT kind, reason FROM device_quarantine").fetchall())
        assert set(kept) == {"invalid", "unknown_device"} and all(kept.values()), kept

        # kill -9 while the rest is being published, then restart with the same client id
        def publish_rest():
            for d in stream[half:]:
                pub.send(d["esp32_name"], json.dumps(d).encode())
                time.sleep(0.003)

        publisher = threading.Thread(target=publish_rest)
        publisher.start()
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        at_kill = readings(light) + readings(fan)
        publisher.join()
        pub.wait_all()
        proc = _start_ingester(ctx, mqtt_broker.url, log)
        assert _wait(lambda: all_in(len(light_docs), len(fan_docs)), 60), log.read_text()[-3000:]
        time.sleep(0.5)  # anything delivered twice would land now
        assert half <= at_kill < len(stream), "killed before or after the second half was taken in"
    finally:
        pub.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log.read_text()[-3000:]

    assert readings(light) == len(light_docs) and readings(fan) == len(fan_docs)
    for sid in (light, fan):
        assert _scalar(ctx, f"SELECT COUNT(*) FROM (SELECT DISTINCT ts FROM readings WHERE series_id = {sid}) d") \
            == readings(sid)
        assert _scalar(ctx, f"SELECT COUNT(*) FROM ledger WHERE series_id = {sid} AND delta_milli_wh < 0") == 0
    start, end = timeutil.day_bounds(DAY, TZ)
    for sid, expected in ((light, light_expected), (fan, fan_expected)):
        (bucket,) = queries.energy_buckets(ctx.dbs.telemetry, sid, "day", start, end, TZ)
        assert bucket.energy_milli_wh == expected
    assert _scalar(ctx, "SELECT COUNT(*) FROM device_quarantine") == 2


def _message(payload: bytes, kind: str = "telemetry", esp: str = "ESP01") -> Message:
    return Message(topic=f"autovolt/{esp}/{kind}", payload=payload, mid=1, received_at=0.0, retain=False,
                   esp32_name=esp, kind=kind)


def test_rejected_messages_are_kept_as_invalid_with_the_reason_and_status_is_counted_and_kept(sqlite_dbs, tmp_path):
    ctx = make_ctx(sqlite_dbs, tmp_path)
    ingest = MqttIngest(ctx.pipeline, ctx.dbs.main_reader, 1)
    before = REGISTRY.get_sample_value("wattline_mqtt_device_messages_total", {"kind": "status"}) or 0.0
    ingest.handle([_message(b"online", "status"), _message(b"{}", "heartbeat")])
    assert REGISTRY.get_sample_value("wattline_mqtt_device_messages_total", {"kind": "status"}) == before + 1
    with ctx.dbs.telemetry.connect() as c:  # kept apart from telemetry (tests/test_controller_status.py)
        assert sorted(c.exec_driver_sql("SELECT source FROM raw_events").fetchall()) == [
            ("mqtt:heartbeat",), ("mqtt:status",)]
    ingest.reject([_message(b'{"esp32_name": "ESP01"}')], "handler failed: boom")
    with ctx.dbs.telemetry.connect() as c:
        assert c.exec_driver_sql("SELECT kind, reason, source FROM device_quarantine").fetchall() == [
            ("invalid", "handler failed: boom", "mqtt")]


def test_a_database_that_is_down_makes_the_batch_retried_not_rejected(sqlite_dbs, tmp_path, monkeypatch):
    from sqlalchemy.exc import IntegrityError, OperationalError

    ctx = make_ctx(sqlite_dbs, tmp_path)
    ingest = MqttIngest(ctx.pipeline, ctx.dbs.main_reader, 1)
    body = json.dumps(doc(timeutil.day_bounds(DAY, TZ)[0], wh=1.0)).encode()

    def down(*_a, **_k):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(mqtt_ingest, "ingest_documents", down)
    with pytest.raises(HandlerUnavailable):
        ingest.handle([_message(body)])

    def bug(*_a, **_k):
        raise IntegrityError("INSERT", {}, Exception("constraint"))

    monkeypatch.setattr(mqtt_ingest, "ingest_documents", bug)
    with pytest.raises(IntegrityError):  # not "unavailable": the consumer isolates and rejects it
        ingest.handle([_message(body)])

"""The campus device fleet (seed 002): payloads, timetable, faults, determinism, Last Will."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import defaultdict
from datetime import date, datetime, time

import paho.mqtt.client as mqtt
import pytest
from mqtt_broker import mqtt_broker  # noqa: F401 - the fixture
from paho.mqtt.enums import CallbackAPIVersion

from wattline.domain import timeutil
from wattline.simulator.device_publisher import DevicePublisher
from wattline.simulator.devices import (TIMEZONE, DeviceFleetSimulator, Faults, campus_fleet, day_schedule,
                                        on_seconds)

SEED_FIELDS = {"esp32_name", "classroom", "device_id", "timestamp", "power_w", "energy_wh_total", "switch_state",
               "uptime_seconds", "status", "sequence_no", "firmware_ver", "wifi_rssi"}
WEDNESDAY = date(2025, 11, 5)
SATURDAY = date(2025, 11, 8)
HARSH = Faults(resets_per_day=6, offline_per_day=8, offline_min_s=60, offline_max_s=1500, buffer_messages=60,
               out_of_order_prob=0.05, duplicate_prob=0.03)


def _midnight(d: date) -> int:
    return timeutil.local_midnight(d, TIMEZONE)


def _events(fleet, start, end, step):
    sim = DeviceFleetSimulator(fleet, start)
    out, t = [], start
    while t < end:
        t = min(t + step, end)
        out.extend(sim.advance(t))
    return out, sim


def test_the_same_seed_is_the_same_stream_however_it_is_chunked():
    fleet = campus_fleet(3, 4, seed=7, faults=HARSH)
    start = _midnight(WEDNESDAY) + 8 * 3600
    a, _ = _events(fleet, start, start + 6 * 3600, 3600)
    b, _ = _events(campus_fleet(3, 4, seed=7, faults=HARSH), start, start + 6 * 3600, 437)
    assert a == b and len(a) > 5000
    c, _ = _events(campus_fleet(3, 4, seed=8, faults=HARSH), start, start + 6 * 3600, 3600)
    assert c != a
    # a controller does not depend on how many others there are
    d, _ = _events(campus_fleet(5, 4, seed=7, faults=HARSH), start, start + 6 * 3600, 3600)
    assert [e for e in d if e.esp32_name == "ESP02"] == [e for e in a if e.esp32_name == "ESP02"]
    assert [e.at for e in a] == sorted(e.at for e in a)


def test_payloads_have_the_seed_shape():
    fleet = campus_fleet(2, 3, seed=1, faults=Faults.none())
    start = _midnight(WEDNESDAY) + 10 * 3600
    events, _ = _events(fleet, start, start + 600, 600)
    tele = [e for e in events if e.kind == "telemetry"]
    assert tele and all(set(e.payload) == SEED_FIELDS for e in tele)
    p = tele[0].payload
    assert p["esp32_name"] == "ESP01" and p["classroom"] == "CR-101" and p["device_id"] == "light_1"
    assert p["switch_state"].keys() == {"sw1", "sw2", "sw3"} and p["status"] == "online"
    datetime.strptime(p["timestamp"], "%Y-%m-%dT%H:%M:%SZ")
    status = [e for e in events if e.kind == "status"]
    assert {e.esp32_name for e in status} == {"ESP01", "ESP02"} and all(e.retain for e in status)
    beats = [e for e in events if e.kind == "heartbeat"]
    assert len(beats) == 2 * 20  # every 30 s per controller
    # every 30 s per device
    per_device = defaultdict(list)
    for e in tele:
        per_device[(e.esp32_name, e.payload["device_id"])].append(e.measured_at)
    assert all(len(v) == 20 and {b - a for a, b in zip(v, v[1:])} == {30} for v in per_device.values())


def _readings_in_measurement_order(events):
    series = defaultdict(dict)
    for e in events:
        if e.kind == "telemetry":
            key = (e.esp32_name, e.payload["device_id"])
            series[key][(e.measured_at, e.payload["sequence_no"])] = e.payload  # repeats collapse
    return {k: [v[t] for t in sorted(v)] for k, v in series.items()}


def test_energy_is_monotonic_except_at_resets_which_restart_uptime_and_sequence():
    fleet = campus_fleet(4, 4, seed=3, faults=HARSH)
    start = _midnight(WEDNESDAY)
    events, sim = _events(fleet, start, start + 86400, 6 * 3600)
    assert sim.stats.resets >= 8 and sim.stats.offline_spells > sim.stats.resets
    seen_resets = 0
    for (esp, dev), readings in _readings_in_measurement_order(events).items():
        draw = next(d.draw_w for d in fleet.controller(esp).devices if d.device_id == dev)
        for prev, cur in zip(readings, readings[1:]):
            if cur["uptime_seconds"] < prev["uptime_seconds"]:  # a firmware reset
                seen_resets += 1
                assert cur["uptime_seconds"] <= prev["uptime_seconds"]
                assert cur["energy_wh_total"] <= draw * cur["uptime_seconds"] / 3600 + 1e-3
                assert cur["sequence_no"] <= len(fleet.controller(esp).devices) * (cur["uptime_seconds"] // 30 + 1)
            else:
                assert cur["energy_wh_total"] >= prev["energy_wh_total"]
                assert cur["sequence_no"] > prev["sequence_no"]
                assert cur["uptime_seconds"] > prev["uptime_seconds"]
    assert seen_resets >= 8


def test_faults_show_up_as_real_fleets_do():
    fleet = campus_fleet(4, 4, seed=5, faults=HARSH)
    start = _midnight(WEDNESDAY)
    events, sim = _events(fleet, start, start + 86400, 3600)
    s = sim.stats
    assert s.buffered > 0 and s.out_of_order > 0 and s.duplicates > 0 and s.dropped_by_device > 0
    # a disconnect is followed by a connect, its status online, then the burst of buffered readings
    for i, e in enumerate(events):
        if e.kind == "disconnect":
            nxt = [x for x in events[i + 1:] if x.esp32_name == e.esp32_name][:2]
            if nxt:  # (a spell may last past the end of the run)
                assert [x.kind for x in nxt] == ["connect", "status"]
    buffered = [e for e in events if e.buffered]
    assert all(e.measured_at < e.at for e in buffered)
    assert all(timeutil.parse_instant(e.payload["timestamp"]) < e.at for e in buffered)
    # out of order: some telemetry of a controller is published after a later reading
    late = 0
    last = {}
    for e in events:
        if e.kind == "telemetry" and not e.buffered:
            if e.measured_at < last.get(e.esp32_name, 0):
                late += 1
            last[e.esp32_name] = max(last.get(e.esp32_name, 0), e.measured_at)
    assert late > 0
    # clocks are off a little, never far
    skew = [timeutil.parse_instant(e.payload["timestamp"]) - e.measured_at for e in events if e.kind == "telemetry"]
    assert max(map(abs, skew)) < 60 and any(abs(x) >= 1 for x in skew)
    # nothing is lost between the fleet and its stats
    assert sum(e.kind == "telemetry" for e in events) == s.telemetry


def test_the_timetable_decides_the_on_time():
    fleet = campus_fleet(3, 4, seed=11, faults=Faults.none())
    for day, teaching in ((WEDNESDAY, True), (SATURDAY, False)):
        start, end = _midnight(day), _midnight(day) + 86400
        events, _ = _events(fleet, start, end + 60, 3600)
        readings = _readings_in_measurement_order(events)
        total_on = 0.0
        for c in fleet.controllers:
            sched = day_schedule(fleet, c, day)
            for d in c.devices:
                series = [p for p in readings[(c.esp32_name, d.device_id)]]
                on = on_seconds(fleet, c.esp32_name, d.device_id, start, end)
                total_on += on
                first = next(p for p in series if timeutil.parse_instant(p["timestamp"]) >= start)
                last = [p for p in series if timeutil.parse_instant(p["timestamp"]) < end][-1]
                energy = last["energy_wh_total"] - first["energy_wh_total"]
                assert energy == pytest.approx(d.draw_w * on / 3600, abs=2e-3)
                for a, b in sched[d.device_id]:  # within the teaching day (or the guard's round)
                    lo = datetime.fromtimestamp(a, timeutil.zone(TIMEZONE)).time()
                    hi = datetime.fromtimestamp(b, timeutil.zone(TIMEZONE)).time()
                    assert time(8, 56) <= lo and hi <= time(20, 0)
                for p in series:  # the reported switch and power follow the schedule
                    t = timeutil.parse_instant(p["timestamp"])
                    is_on = any(a <= t < b for a, b in sched[d.device_id])
                    assert p["switch_state"][d.switch] is is_on
                    assert (p["power_w"] > 0) is is_on
                if d.kind == "light" and teaching:
                    assert on > 0  # 80 % occupancy over seven periods: every room teaches
        if teaching:
            periods = 7 * 50 * 60
            assert 0.3 * periods * fleet.device_count < total_on < 1.3 * periods * fleet.device_count
        else:
            assert total_on == 0


@pytest.mark.mqtt
def test_the_last_will_reaches_a_subscriber_when_the_socket_is_killed(mqtt_broker):  # noqa: F811
    fleet = campus_fleet(1, 2, seed=0)
    seen, lock = [], threading.Lock()
    got = threading.Condition(lock)
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="will-watcher")

    def on_message(_c, _u, msg):
        with got:
            seen.append((msg.topic, json.loads(msg.payload)["status"]))
            got.notify_all()

    sub.on_message = on_message
    sub.connect("127.0.0.1", mqtt_broker.port)
    sub.subscribe("autovolt/+/status", qos=1)
    sub.loop_start()
    pub = DevicePublisher(fleet, "127.0.0.1", mqtt_broker.port)
    try:
        pub.connect("ESP01")
        pub.publish("ESP01", "status", {"esp32_name": "ESP01", "status": "online"}, retain=True)
        with got:
            assert got.wait_for(lambda: ("autovolt/ESP01/status", "online") in seen, 10)
        pub.cut("ESP01")  # no DISCONNECT packet: the broker publishes the Will
        with got:
            assert got.wait_for(lambda: seen[-1] == ("autovolt/ESP01/status", "offline"), 10), seen
        pub.connect("ESP01")  # back: online again over the same client
        pub.publish("ESP01", "status", {"esp32_name": "ESP01", "status": "online"}, retain=True)
        with got:
            assert got.wait_for(lambda: seen[-1] == ("autovolt/ESP01/status", "online"), 10)
    finally:
        pub.close()
        sub.disconnect()
        sub.loop_stop()
    assert pub.stats.disconnects == 1 and pub.stats.connects == 2


def test_the_cli_writes_json_lines_without_a_broker(tmp_path):
    env = {**os.environ, "WATTLINE_DATA_DIR": str(tmp_path)}
    env.pop("WATTLINE_MQTT_URL", None)
    p = subprocess.run([sys.executable, "-m", "wattline.cli", "simulate", "devices", "--classrooms", "2",
                        "--devices", "3", "--speed", "0", "--duration", "10m", "--seed", "4",
                        "--start", "2025-11-05T04:00:00Z"], env=env, capture_output=True, text=True, timeout=60,
                       check=False)
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    tele = [x for x in lines if x["topic"].endswith("/telemetry")]
    assert len(tele) >= 2 * 3 * 19 and all(set(x["payload"]) == SEED_FIELDS for x in tele)
    assert {x["topic"] for x in lines if x["topic"].endswith("/status")} == {"autovolt/ESP01/status",
                                                                               "autovolt/ESP02/status"}
    assert "telemetry" in p.stderr  # the summary

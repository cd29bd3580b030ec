"""The simulated fleet published through a test-owned Mosquitto into the consumer."""

from __future__ import annotations

import json
import threading

import pytest
from mqtt_testing import running_consumer, wait_until

from wattline.domain import timeutil
from wattline.simulator.device_publisher import DevicePublisher, run_fleet
from wattline.simulator.devices import DeviceFleetSimulator, Faults, campus_fleet

pytestmark = pytest.mark.mqtt

FLAKY_WIFI = Faults(resets_per_day=40, offline_per_day=150, offline_min_s=60, offline_max_s=600,
                    out_of_order_prob=0.05, duplicate_prob=0.05)


def test_every_message_the_fleet_publishes_arrives_and_each_lost_link_brings_its_will(mqtt_broker):
    fleet = campus_fleet(2, 3, seed=2, faults=FLAKY_WIFI)
    start = timeutil.parse_instant("2025-11-05T04:00:00Z")  # 09:30 in Asia/Kolkata
    sim = DeviceFleetSimulator(fleet, start)
    sent = []
    received = []
    with running_consumer(mqtt_broker.url, received.extend) as consumer:
        pub = DevicePublisher(fleet, "127.0.0.1", mqtt_broker.port)
        try:
            run_fleet(pub, sim, speed=0, until_ts=start + 1800, stop=threading.Event(), step_s=60,
                      sink=lambda events: sent.extend(events))
            assert pub.flush(20)
        finally:
            pub.close()
        telemetry = [e for e in sent if e.kind == "telemetry"]
        cuts = sum(e.kind == "disconnect" for e in sent)
        online_at_end = sum(e.kind == "connect" for e in sent) - cuts

        def offline():
            return [m for m in received if m.kind == "status" and json.loads(m.payload)["status"] == "offline"]

        assert wait_until(lambda: sum(m.kind == "telemetry" for m in received) >= len(telemetry), 20)
        assert wait_until(lambda: len(offline()) >= cuts + online_at_end, 10)
    assert cuts >= 2 and sim.stats.buffered > 0
    got = [json.loads(m.payload) for m in received if m.kind == "telemetry"]
    key = lambda p: (p["esp32_name"], p["device_id"], p["sequence_no"], p["uptime_seconds"])
    assert sorted(map(key, got)) == sorted(key(e.payload) for e in telemetry)  # repeats included
    # every lost link brought its Will, and closing said goodbye for the controllers still online
    assert len(offline()) == cuts + online_at_end
    assert consumer.stats.rejected == 0

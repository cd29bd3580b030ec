"""What real device fleets do, through the test-owned Mosquitto and the MQTT ingester
(``MqttConsumer`` + ``MqttIngest`` in a thread of the test, as ``wattline mqtt`` wires
them), on SQLite and PostgreSQL. Each scenario asserts the ledger, the day aggregate and
its cost (a cost version of 8 INR/kWh, so the cost in micro-units is 8 x the energy in
milli-Wh), not only that something was stored:

* a device offline, then back with its buffered messages (its Last Will published by the broker);
* a firmware reset (counter near zero, uptime restarted): a reset marker, never negative;
* a pause over 10 minutes: ``Flag.GAP`` on the entry that spans it;
* out-of-order messages across batches: the same ledger as in order;
* the same message twice, and a QoS 1 redelivery by the broker after a consumer
  committed but did not acknowledge: counted once;
* an unknown device registered later with ``wattline devices add``: its kept messages replayed;
* invalid payloads beside valid ones: kept with reasons, the valid ones in the ledger,
  the ingester going on;
* the switch state: on-time per entry, a power device counted only while on, a
  counter's energy while off kept and flagged ``Flag.SWITCHED_OFF``.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
from dataclasses import dataclass

import pytest
from mqtt_broker import mqtt_broker  # noqa: F401 - the fixture
from prometheus_client import REGISTRY
from test_devices import DAY, STEP, TZ, _day_with_a_firmware_reset, doc
from test_mqtt_ingest import Publisher, _wait
from world import env_for, make_ctx

from wattline import provisioning
from wattline.domain import timeutil
from wattline.domain.quality import Flag
from wattline.jobs.mqtt_ingest import MqttIngest
from wattline.simulator.device_publisher import DevicePublisher
from wattline.simulator.devices import Faults, campus_fleet
from wattline.sources.mqtt import ConsumerConfig, MqttConsumer, parse_broker_url
from wattline.store import cost_versions_repo, device_registry, queries
from wattline.store.energy_costs import group_costs

RATE_MICRO = 8_000_000  # 8 INR per kWh: cost micro-units = 8 x milli-Wh
DAY_START, DAY_END = timeutil.day_bounds(DAY, TZ)
MONTH_START = timeutil.day_bounds(DAY.replace(day=1), TZ)[0]


class Ingester:
    """The MQTT consumer feeding the device pipeline, in a thread; ``acknowledge=False``
    commits every batch but never acknowledges it (a crash between the two)."""

    def __init__(self, ctx, broker, client_id: str = "scenario-ingest", acknowledge: bool = True):
        config = ConsumerConfig(broker=parse_broker_url(broker.url), prefix="autovolt", client_id=client_id,
                                max_batch=100)
        ingest = MqttIngest(ctx.pipeline, ctx.dbs.main_reader, 1)
        self.consumer = MqttConsumer(config, ingest.handle, ingest.reject)
        if not acknowledge:
            self.consumer._ack = lambda messages: None  # test-only: the PUBACKs never leave
        self.thread = threading.Thread(target=self.consumer.run, daemon=True)

    def __enter__(self) -> "Ingester":
        self.consumer.start()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.consumer.request_stop()
        self.thread.join(15)

    def wait_for(self, messages: int, timeout_s: float = 30) -> None:
        """Until ``messages`` messages went through the handler (or were rejected)."""
        s = self.consumer.stats
        assert _wait(lambda: s.handled + s.rejected >= messages, timeout_s), (s, messages)


@dataclass
class Campus:
    ctx: object
    classroom_id: int

    def device(self, esp="ESP01", dev="light_1") -> dict:
        with self.ctx.dbs.main_reader.connect() as conn:
            return device_registry.device(conn, 1, esp, dev)

    def energy_series(self, esp="ESP01", dev="light_1") -> int:
        return self.device(esp, dev)["series"]["energy_total"]

    def ledger(self, series_id: int) -> list[tuple]:
        with self.ctx.dbs.telemetry.connect() as c:
            return [tuple(r) for r in c.exec_driver_sql(
                "SELECT start_ts, end_ts, delta_milli_wh, flags FROM ledger "
                f"WHERE series_id = {int(series_id)} ORDER BY end_ts")]

    def count(self, table: str, where: str = "") -> int:
        with self.ctx.dbs.telemetry.connect() as c:
            return c.exec_driver_sql(f"SELECT COUNT(*) FROM {table} {where}").scalar()

    def day(self, esp="ESP01", dev="light_1", period: str = "day") -> queries.EnergyBucket:
        """The device's day (or month) bucket with its cost."""
        d = self.device(esp, dev)
        with self.ctx.dbs.main_reader.connect() as conn:
            tariff = cost_versions_repo.tariff_for_asset(conn, d["asset_id"])
        start, end = (DAY_START, DAY_END) if period == "day" else (MONTH_START, MONTH_START + 1)
        (bucket,) = queries.energy_buckets(self.ctx.dbs.telemetry, d["series"]["energy_total"], period, start, end,
                                           TZ, tariff=tariff)
        return bucket

    def classroom_day_cost(self) -> int:
        _tz, (bucket,) = group_costs(self.ctx.dbs.main_reader, self.ctx.dbs.telemetry, self.classroom_id, "day",
                                     DAY_START, DAY_END)
        return bucket.cost_micro

    def assert_day(self, expected_milli_wh: int, esp="ESP01", dev="light_1") -> queries.EnergyBucket:
        """Ledger total, day aggregate, month aggregate and cost all agree with ``expected_milli_wh``;
        the device's switch was on throughout: its on-time is the ledger's span, nothing switched off."""
        sid = self.energy_series(esp, dev)
        ledger = self.ledger(sid)
        assert all(delta >= 0 for _, _, delta, _ in ledger)
        assert sum(delta for _, _, delta, _ in ledger) == expected_milli_wh
        assert not any(flags & Flag.SWITCHED_OFF for *_, flags in ledger)
        day = self.day(esp, dev)
        assert day.energy_milli_wh == expected_milli_wh
        assert day.on_time_s == sum(end - start for start, end, _, _ in ledger)
        assert day.cost_micro == expected_milli_wh * RATE_MICRO // 1_000_000 and day.currency == "INR"
        month = self.day(esp, dev, "month")
        assert (month.energy_milli_wh, month.cost_micro) == (day.energy_milli_wh, day.cost_micro)
        return day


@pytest.fixture
def campus(dbs, tmp_path, set_clock):
    set_clock(DAY_END + 3600)  # an hour after the day: nothing is "in the future"
    ctx = make_ctx(dbs, tmp_path)
    with dbs.main.begin() as conn:
        room = provisioning.add_classroom(conn, "CR-101", TZ)
        provisioning.add_classroom(conn, "CR-102", TZ)
        provisioning.add_device(conn, "ESP01", "light_1", "CR-101", switch="sw1")
        provisioning.add_device(conn, "ESP01", "fan_1", "CR-101", switch="sw2")
        cost_versions_repo.add(conn, rate_micro_per_kwh=RATE_MICRO, effective_from=DAY_START - 86400,
                               currency="INR", created_by="test")
    return Campus(ctx, room)


def counter_docs(n: int, *, dev="light_1", esp="ESP01", step=STEP, start=DAY_START, wh0=1000.0, dwh=3.33,
                 seq0=100, uptime0=7200, classroom="CR-101") -> list[dict]:
    """``n`` counter readings ``step`` s apart, ``dwh`` Wh a step, every switch on."""
    return [doc(start + k * step, esp=esp, dev=dev, wh=round(wh0 + k * dwh, 2), seq=seq0 + k,
                uptime=uptime0 + k * step, classroom=classroom, switch_state={"sw1": True, "sw2": True})
            for k in range(n)]


def milli(docs: list[dict]) -> int:
    """last - first counter value of ``docs`` (by time), milli-Wh."""
    by_ts = sorted(docs, key=lambda d: d["timestamp"])
    return round(by_ts[-1]["energy_wh_total"] * 1000) - round(by_ts[0]["energy_wh_total"] * 1000)


def publish(pub: Publisher, docs) -> None:
    for d in docs:  # bytes: an invalid payload, on ESP01's topic
        pub.send("ESP01", d) if isinstance(d, bytes) else pub.send(d["esp32_name"], json.dumps(d).encode())
    pub.wait_all()


def _status_count() -> float:
    return REGISTRY.get_sample_value("wattline_mqtt_device_messages_total", {"kind": "status"}) or 0.0


# ------------------------------------------------------------------ scenarios


def test_offline_then_back_with_buffered_messages(campus, mqtt_broker):  # noqa: F811
    fleet = campus_fleet(1, 2, faults=Faults.none())  # ESP01 with light_1 (sw1) and fan_1 (sw2), its Last Will
    docs = counter_docs(60)
    offline = range(20, 45)  # 25 readings (2 h) measured while offline, published on return
    statuses = _status_count()
    device = DevicePublisher(fleet, "127.0.0.1", mqtt_broker.port, client_prefix="scenario")
    with Ingester(campus.ctx, mqtt_broker) as ingester:
        device.connect("ESP01")
        for k in range(offline.start):
            device.publish("ESP01", "telemetry", docs[k])
        device.flush()
        ingester.wait_for(offline.start)
        device.cut("ESP01")  # no DISCONNECT: the broker publishes the Will, "offline"
        ingester.wait_for(offline.start + 1)
        assert _status_count() == statuses + 1
        sid = campus.energy_series()
        assert campus.ledger(sid)[-1][1] == DAY_START + (offline.start - 1) * STEP
        device.connect("ESP01")
        device.publish("ESP01", "status", {"esp32_name": "ESP01", "status": "online"}, retain=True)
        for k in range(offline.start, len(docs)):  # the buffered burst, then live again
            device.publish("ESP01", "telemetry", docs[k])
        device.flush()
        ingester.wait_for(len(docs) + 2)
    device.close()
    ledger = campus.ledger(sid)
    assert len(ledger) == len(docs) - 1
    assert not any(flags & Flag.GAP for *_, flags in ledger)  # the buffer filled the offline spell
    day = campus.assert_day(milli(docs))
    assert "gap" not in day.quality
    assert campus.classroom_day_cost() == day.cost_micro  # the fan sent nothing


def test_a_firmware_reset_is_a_reset_marker_never_negative(campus, mqtt_broker):  # noqa: F811
    docs, expected = _day_with_a_firmware_reset()
    pub = Publisher(mqtt_broker.port)
    with Ingester(campus.ctx, mqtt_broker) as ingester:
        publish(pub, docs)
        ingester.wait_for(len(docs))
    pub.close()
    ledger = campus.ledger(campus.energy_series())
    resets = [row for row in ledger if row[3] & Flag.RESET]
    assert len(ledger) == len(docs) - 1 and len(resets) == 1
    assert resets[0][2] == 1_250  # the counter's value after the reset, counted from zero
    campus.assert_day(expected)


def test_a_pause_over_ten_minutes_is_flagged_gap(campus, mqtt_broker):  # noqa: F811
    docs = counter_docs(12)
    docs = docs[:5] + [d | {"timestamp": timeutil.iso(timeutil.parse_instant(d["timestamp"]) + 900)}
                       for d in docs[5:]]  # 20 min between the 5th and the 6th reading
    pub = Publisher(mqtt_broker.port)
    with Ingester(campus.ctx, mqtt_broker) as ingester:
        publish(pub, docs)
        ingester.wait_for(len(docs))
    pub.close()
    ledger = campus.ledger(campus.energy_series())
    gaps = [row for row in ledger if row[3] & Flag.GAP]
    assert [(s, e) for s, e, *_ in gaps] == [(DAY_START + 4 * STEP, DAY_START + 5 * STEP + 900)]
    assert gaps[0][2] == 3_330  # the energy across the pause is kept as measured
    day = campus.assert_day(milli(docs))
    assert "gap" in day.quality


def test_out_of_order_messages_give_the_same_ledger_as_in_order(campus, mqtt_broker):  # noqa: F811
    in_order = counter_docs(40, dev="light_1")
    shuffled = counter_docs(40, dev="fan_1")
    random.Random(3).shuffle(shuffled)
    pub = Publisher(mqtt_broker.port)
    with Ingester(campus.ctx, mqtt_broker) as ingester:
        publish(pub, in_order)
        ingester.wait_for(len(in_order))
        for a in range(0, len(shuffled), 8):  # in separate batches: later ones arrive before earlier ones
            publish(pub, shuffled[a:a + 8])
            ingester.wait_for(len(in_order) + a + len(shuffled[a:a + 8]))
    pub.close()
    assert campus.ledger(campus.energy_series("ESP01", "fan_1")) == campus.ledger(campus.energy_series())
    light = campus.assert_day(milli(in_order))
    fan = campus.assert_day(milli(shuffled), dev="fan_1")
    assert (fan.energy_milli_wh, fan.cost_micro, fan.flags) == (light.energy_milli_wh, light.cost_micro, light.flags)
    assert campus.classroom_day_cost() == 2 * light.cost_micro


def test_the_same_message_twice_and_a_qos1_redelivery_count_once(campus, mqtt_broker):  # noqa: F811
    docs = counter_docs(20)
    pub = Publisher(mqtt_broker.port)
    with Ingester(campus.ctx, mqtt_broker) as ingester:
        publish(pub, docs[:10] + [docs[4], docs[9]])  # two sent again by the device
        ingester.wait_for(12)
    # a consumer that commits the next messages but dies before its PUBACKs ...
    with Ingester(campus.ctx, mqtt_broker, acknowledge=False) as crashing:
        publish(pub, docs[10:])
        crashing.wait_for(10)
    assert campus.count("readings", f"WHERE series_id = {campus.energy_series()}") == 20
    # ... so the broker delivers them again (DUP) to the next session of the same client id
    with Ingester(campus.ctx, mqtt_broker) as restarted:
        restarted.wait_for(10)
        assert restarted.consumer.stats.redelivered == 10
    pub.close()
    sid = campus.energy_series()
    assert len(campus.ledger(sid)) == 19
    assert campus.count("readings", f"WHERE series_id = {sid}") == 20
    campus.assert_day(milli(docs))


def test_an_unknown_device_registered_later_is_replayed_into_the_ledger(campus, mqtt_broker):  # noqa: F811
    unknown = counter_docs(10, esp="ESP02", dev="light_9", classroom="CR-102", wh0=500.0, dwh=2.5)
    known = counter_docs(10)
    pub = Publisher(mqtt_broker.port)
    with Ingester(campus.ctx, mqtt_broker) as ingester:
        publish(pub, [d for pair in zip(unknown, known) for d in pair])
        ingester.wait_for(20)
    pub.close()
    assert campus.count("device_quarantine", "WHERE kind = 'unknown_device' AND replayed_at IS NULL") == 10
    campus.assert_day(milli(known))
    add = subprocess.run([sys.executable, "-m", "wattline.cli", "devices", "add", "ESP02", "light_9",
                          "--classroom", "CR-102", "--switch", "sw1"], env=env_for(campus.ctx),
                         capture_output=True, text=True, timeout=120)
    assert add.returncode == 0, add.stderr
    assert "replayed 10 of 10 kept messages" in add.stdout
    assert campus.count("device_quarantine", "WHERE replayed_at IS NULL") == 0
    sid = campus.energy_series("ESP02", "light_9")
    assert [delta for _, _, delta, _ in campus.ledger(sid)] == [2_500] * 9
    campus.assert_day(22_500, esp="ESP02", dev="light_9")


def test_invalid_payloads_beside_valid_ones_are_kept_with_reasons(campus, mqtt_broker):  # noqa: F811
    docs = counter_docs(20)
    invalid = [b"{not json", b'{"esp32_name": "ESP01", "device_id": "light_1"}',
               json.dumps({**docs[3], "energy_wh_total": "lots"}).encode(),
               json.dumps({**docs[3], "timestamp": "yesterday"}).encode(), b"\xff\xfe"]
    stream = docs[:10] + invalid + docs[10:15]
    pub = Publisher(mqtt_broker.port)
    with Ingester(campus.ctx, mqtt_broker) as ingester:
        publish(pub, stream)
        ingester.wait_for(len(stream))
        publish(pub, docs[15:])  # the ingester goes on
        ingester.wait_for(len(stream) + 5)
    pub.close()
    with campus.ctx.dbs.telemetry.connect() as c:
        kept = c.exec_driver_sql("SELECT reason FROM device_quarantine WHERE kind = 'invalid'").fetchall()
    assert len(kept) == len(invalid) and all(r[0] for r in kept)
    assert any("energy_wh_total" in r[0] for r in kept) and any("timestamp" in r[0] for r in kept)
    assert campus.count("raw_events") == len(docs) + len(invalid)  # each kept as it arrived
    assert len(campus.ledger(campus.energy_series())) == len(docs) - 1
    campus.assert_day(milli(docs))


def test_switch_state_gives_on_time_and_flags_metered_energy_while_off(campus, mqtt_broker):  # noqa: F811
    with campus.ctx.dbs.main.begin() as conn:
        provisioning.add_device(conn, "ESP01", "fan_2", "CR-101", switch="sw3", method="power")
    states = [True, True, False, False, True, True]
    t = [DAY_START + 3600 + k * STEP for k in range(len(states))]
    wh = [100.0, 105.0, 110.0, 112.0, 112.0, 117.0]  # the counter also moves in the first off step
    light = [doc(t[k], wh=wh[k], seq=k, uptime=k * STEP, switch_state={"sw1": on, "sw3": on})
             for k, on in enumerate(states)]
    fan = [doc(t[k] + 5, dev="fan_2", power=60.0 if on else 0.0, seq=100 + k, uptime=k * STEP,
               switch_state={"sw1": on, "sw3": on}) for k, on in enumerate(states)]
    pub = Publisher(mqtt_broker.port)
    with Ingester(campus.ctx, mqtt_broker) as ingester:
        publish(pub, [d for pair in zip(light, fan) for d in pair])
        ingester.wait_for(len(light) + len(fan))
    pub.close()

    def entries(sid):
        with campus.ctx.dbs.telemetry.connect() as c:
            return [tuple(r) for r in c.exec_driver_sql(
                f"SELECT delta_milli_wh, flags, on_time_s FROM ledger WHERE series_id = {int(sid)} ORDER BY end_ts")]

    metered = entries(campus.energy_series())
    assert [d for d, _, _ in metered] == [5_000, 5_000, 2_000, 0, 5_000]  # as metered, also while off
    assert [bool(f & Flag.SWITCHED_OFF) for _, f, _ in metered] == [False, False, True, False, False]
    assert [on for *_, on in metered] == [300, 300, 0, 0, 300]
    day = campus.day()
    assert (day.energy_milli_wh, day.on_time_s, day.hc_energy_milli_wh) == (17_000, 900, 17_000)
    assert day.flags & Flag.SWITCHED_OFF and day.cost_micro == 17_000 * 8

    power_sid = campus.device("ESP01", "fan_2")["series"]["power"]
    integrated = entries(power_sid)
    # 60 W x 300 s = 5 Wh for each interval that starts switched on, nothing while off
    assert [(d, on) for d, _, on in integrated] == [(5_000, 300), (5_000, 300), (0, 0), (0, 0), (5_000, 300)]
    with campus.ctx.dbs.main_reader.connect() as conn:
        tariff = cost_versions_repo.tariff_for_asset(conn, campus.device("ESP01", "fan_2")["asset_id"])
    (fan_day,) = queries.energy_buckets(campus.ctx.dbs.telemetry, power_sid, "day", DAY_START, DAY_END, TZ,
                                        tariff=tariff)
    assert (fan_day.energy_milli_wh, fan_day.on_time_s, fan_day.estimated_milli_wh) == (15_000, 900, 15_000)
    assert fan_day.cost_micro == 15_000 * 8
    assert campus.classroom_day_cost() == (17_000 + 15_000) * 8

"""Faults while a simulated fleet publishes through the test-owned Mosquitto into
``wattline mqtt`` (a subprocess), on SQLite and PostgreSQL:

* the ingester is killed with SIGKILL at seeded random moments (twice) and
  restarted with the same client id;
* the broker is stopped (SIGTERM: it saves its persistence file) and started again
  mid-stream.

Afterwards every published reading is in the ledger exactly once: the set of
(device, timestamp) published equals the set of readings stored, and each counter
device's ledger total is its last counter value minus its first, to the milli-Wh.
``tests/test_mqtt_ingest.py`` has the single kill of a hand-made stream; these use the
fleet (with its out-of-order and repeated messages).
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from mqtt_broker import mqtt_broker  # noqa: F401 - the fixture
from test_mqtt_ingest import _wait
from world import env_for, make_ctx

from wattline import provisioning
from wattline.domain import timeutil
from wattline.simulator.device_publisher import DevicePublisher, run_fleet
from wattline.simulator.devices import DeviceFleet, DeviceFleetSimulator, Faults, campus_fleet
from wattline.store import device_registry

TZ = "Asia/Kolkata"
START = 1_762_312_800  # 2025-11-05T03:20:00Z = 08:50 in Asia/Kolkata: the first class starts at 09:00
# no firmware resets nor offline spells (they make "last - first" no longer the energy);
# out-of-order and repeated publishes stay, at rates high enough to happen in a short run
FAULTS = Faults(resets_per_day=0.0, offline_per_day=0.0, out_of_order_prob=0.03, duplicate_prob=0.03)


def register_fleet(ctx, fleet: DeviceFleet) -> dict[tuple[str, str], int]:
    """Every classroom and device of ``fleet``; (esp32_name, device_id) -> energy_total series id."""
    out = {}
    with ctx.dbs.main.begin() as conn:
        for c in fleet.controllers:
            provisioning.add_classroom(conn, c.classroom, TZ)
            for d in c.devices:
                provisioning.add_device(conn, c.esp32_name, d.device_id, c.classroom, switch=d.switch)
        for c in fleet.controllers:
            for d in c.devices:
                out[(c.esp32_name, d.device_id)] = device_registry.device(
                    conn, 1, c.esp32_name, d.device_id)["series"]["energy_total"]
    return out


@dataclass
class Published:
    """What the fleet published: per device, timestamp -> counter value (Wh)."""

    readings: dict[tuple[str, str], dict[int, float]] = field(default_factory=dict)
    telemetry: int = 0

    def sink(self, events) -> None:
        for ev in events:
            if ev.kind != "telemetry":
                continue
            p = ev.payload
            self.telemetry += 1
            self.readings.setdefault((p["esp32_name"], p["device_id"]), {})[
                timeutil.parse_instant(p["timestamp"])] = p["energy_wh_total"]

    @property
    def distinct(self) -> int:
        return sum(len(r) for r in self.readings.values())


class FleetRun:
    """The fleet publishing in a thread at ``speed`` x real time for ``sim_s`` simulated
    seconds, in ``stages`` equal parts: before each part after the first it waits for
    :meth:`next_stage`, so that a fault injected during a part always happens while the
    stream is under way, however slowly this machine runs (no race with the clock)."""

    def __init__(self, fleet: DeviceFleet, port: int, sim_s: float, speed: float, stages: int = 1):
        self.published = Published()
        self.publisher = DevicePublisher(fleet, "127.0.0.1", port, client_prefix=f"sim-{random.randrange(10**6)}")
        self.sim = DeviceFleetSimulator(fleet, START)
        self.stop = threading.Event()
        self.gates = [threading.Event() for _ in range(stages - 1)]
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(sim_s, speed, stages), daemon=True)

    def _run(self, sim_s: float, speed: float, stages: int) -> None:
        try:
            for k in range(stages):
                if k:
                    self.gates[k - 1].wait()
                run_fleet(self.publisher, self.sim, speed=speed, until_ts=START + sim_s * (k + 1) / stages,
                          stop=self.stop, sink=self.published.sink)
            assert self.publisher.flush(60), "the broker did not acknowledge every publish"
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.error = exc

    def next_stage(self) -> None:
        next(g for g in self.gates if not g.is_set()).set()

    def start(self) -> "FleetRun":
        self.thread.start()
        return self

    def join(self) -> None:
        self.thread.join(120)
        assert not self.thread.is_alive(), "the fleet did not finish publishing"
        if self.error:
            raise self.error

    def close(self) -> None:
        self.stop.set()
        for g in self.gates:
            g.set()
        self.thread.join(30)
        self.publisher.close(5)


class Ingester:
    """``wattline mqtt`` as a subprocess on the test's databases, one client id across restarts."""

    def __init__(self, ctx, url: str, log: Path, client_id: str = "wattline-ingest-faults"):
        self.ctx, self.url, self.log, self.client_id = ctx, url, log, client_id
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wattline.cli", "mqtt", "--broker", self.url, "--client-id", self.client_id,
             "--max-batch", "100"], env=env_for(self.ctx), stdout=subprocess.DEVNULL, stderr=self.log.open("a"))
        self.starts += 1
        assert _wait(lambda: self.log.read_text().count("subscribed") >= self.starts or self.proc.poll() is not None,
                     60), self.log.read_text()[-3000:]
        assert self.proc.poll() is None, self.log.read_text()[-3000:]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(30) == 0, self.log.read_text()[-3000:]


def count_readings(ctx, series: dict) -> int:
    ids = ",".join(str(int(s)) for s in series.values())
    with ctx.dbs.telemetry.connect() as c:
        return c.exec_driver_sql(f"SELECT COUNT(*) FROM readings WHERE series_id IN ({ids})").scalar()


def assert_every_reading_exactly_once(ctx, series: dict, published: Published) -> None:
    with ctx.dbs.telemetry.connect() as c:
        for key, sid in series.items():
            sent = published.readings.get(key, {})
            stored = [r[0] for r in c.exec_driver_sql(
                f"SELECT ts FROM readings WHERE series_id = {int(sid)} ORDER BY ts")]
            assert stored == sorted(sent), key  # the same set, each once
            total, negative = c.exec_driver_sql(
                "SELECT COALESCE(SUM(delta_milli_wh), 0), COALESCE(SUM(CASE WHEN delta_milli_wh < 0 THEN 1 ELSE 0 END), 0) "
                f"FROM ledger WHERE series_id = {int(sid)}").one()
            first, last = sent[min(sent)], sent[max(sent)]
            assert negative == 0, key
            assert int(total) == round(last * 1000) - round(first * 1000), key


def test_kill_9_of_the_ingester_at_random_moments_loses_and_doubles_nothing(dbs, tmp_path, mqtt_broker):  # noqa: F811
    ctx = make_ctx(dbs, tmp_path)
    fleet = campus_fleet(3, 4, seed=11, faults=FAULTS)
    series = register_fleet(ctx, fleet)
    rng = random.Random(10)  # the kill moments
    ingester = Ingester(ctx, mqtt_broker.url, tmp_path / "ingester.log")
    ingester.start()
    # 45 simulated minutes in 9 s, in three parts: one kill in each of the first two
    run = FleetRun(fleet, mqtt_broker.port, sim_s=2700, speed=300, stages=3).start()
    try:
        for k in range(2):
            # a random number of readings committed since the (re)start, then SIGKILL: mid-stream;
            # at most what the parts published so far hold (12 devices x 30 readings each, less
            # a margin for the phases of the readings), so that the target is always reached
            target = min(count_readings(ctx, series) + rng.randint(20, 200), 360 * (k + 1) - 24)
            assert _wait(lambda: count_readings(ctx, series) >= target, 60), ingester.log.read_text()[-3000:]
            ingester.kill()
            run.next_stage()
            ingester.start()
        run.join()
        assert _wait(lambda: count_readings(ctx, series) >= run.published.distinct, 60), \
            (count_readings(ctx, series), run.published.distinct, ingester.log.read_text()[-3000:])
    finally:
        run.close()
        ingester.stop()
    assert run.published.telemetry > run.published.distinct  # repeats were among them
    assert_every_reading_exactly_once(ctx, series, run.published)


def test_a_broker_restart_mid_stream_loses_nothing(dbs, tmp_path, mqtt_broker):  # noqa: F811
    ctx = make_ctx(dbs, tmp_path)
    fleet = campus_fleet(3, 4, seed=12, faults=FAULTS)
    series = register_fleet(ctx, fleet)
    ingester = Ingester(ctx, mqtt_broker.url, tmp_path / "ingester.log")
    ingester.start()
    run = FleetRun(fleet, mqtt_broker.port, sim_s=2400, speed=300, stages=2).start()
    try:
        assert _wait(lambda: count_readings(ctx, series) >= 150, 60)
        mqtt_broker.restart()  # SIGTERM: sessions, queued and in-flight messages saved, then read back
        run.next_stage()
        run.join()
        assert _wait(lambda: count_readings(ctx, series) >= run.published.distinct, 90), \
            (count_readings(ctx, series), run.published.distinct, ingester.log.read_text()[-3000:])
    finally:
        run.close()
        ingester.stop()
    assert mqtt_broker.starts == 2
    assert_every_reading_exactly_once(ctx, series, run.published)

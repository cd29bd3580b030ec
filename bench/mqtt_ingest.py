"""A device fleet's messages through a test-owned Mosquitto: the bare QoS 1 rate vs the consumer.

    .venv/bin/python bench/mqtt_ingest.py [--classrooms 20] [--devices 10] [--messages 30000]
                                         [--rate 1000] [--paced-seconds 5] [--max-batch 500] [--repeat 1]

The messages are the simulated campus fleet's (seed-002 telemetry, heartbeats, status;
``wattline.simulator.devices``), generated first, then published at QoS 1 by a separate
process (one paho client, every return code checked) to a Mosquitto started on a free
port with ``tests/mosquitto/test.conf``. Two receivers, each run on fresh sessions:

* **bare**: a paho subscriber at QoS 1 (automatic acknowledgement) that only counts;
* **consumer**: ``wattline.sources.mqtt.MqttConsumer`` (manual acknowledgement after the
  handler, persistent session) with a handler that only inserts one row per message into
  SQLite and commits, once per batch.

Each receiver is measured three ways: ``live`` (published as fast as one paho client
goes while the receiver takes them: messages/s from the first publish to the last
message received), ``backlog`` (every message queued for the receiver's persistent
session first, then drained: the receiver's own capacity, the publisher out of the way)
and ``paced`` at ``--rate`` messages/s for ``--paced-seconds`` (publish→handled latency
p50/p99; under saturation latency would only measure queueing). ``lost`` counts distinct
messages never received. Latency uses the system-wide monotonic clock of both processes.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from mqtt_broker import MosquittoBroker

from wattline.simulator.devices import DeviceFleetSimulator, campus_fleet, encode
from wattline.sources.mqtt import ConsumerConfig, MqttConsumer, parse_broker_url

PREFIX = "autovolt"
START = 1_762_312_800  # 2025-11-05T03:20:00Z = 08:50 in Asia/Kolkata: classes about to start


def fleet_messages(classrooms: int, devices: int, n: int, seed: int = 0) -> list[tuple[str, bytes]]:
    """The first ``n`` messages the fleet publishes (link events left out)."""
    sim = DeviceFleetSimulator(campus_fleet(classrooms, devices, seed), START)
    out: list[tuple[str, bytes]] = []
    while len(out) < n:
        for ev in sim.messages(sim.now + 600):
            out.append((f"{PREFIX}/{ev.esp32_name}/{ev.kind}", encode(ev.payload)))
    return out[:n]


def _publisher(port, messages, rate, ready, go, results):
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}")
    client.max_queued_messages_set(0)
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    connected.wait(10)
    ready.set()
    go.wait()
    t_pub = np.empty(len(messages))
    infos = []
    t0 = time.monotonic()
    for i, (topic, payload) in enumerate(messages):
        if rate:
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        t_pub[i] = time.monotonic()
        while True:
            info = client.publish(topic, payload, qos=1)
            if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
            if info.rc != MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                raise RuntimeError(mqtt.error_string(info.rc))
            time.sleep(0.001)  # 65,535 unacknowledged: wait for PUBACKs
        infos.append(info)
    for info in infos:
        info.wait_for_publish(60)
    results.put((t_pub, time.monotonic(), sum(not i.is_published() for i in infos)))
    client.disconnect()
    client.loop_stop()


class Receiver:
    """Arrival (or handled) instant of each distinct payload, and the count of all."""

    def __init__(self):
        self.first_at: dict[bytes, float] = {}
        self.count = 0
        self.last_at = 0.0

    def saw(self, payloads, at: float) -> None:
        # one receiving thread per run: plain dict operations, no lock (cheap per message)
        first = self.first_at
        for p in payloads:
            if p not in first:
                first[p] = at
        self.count += len(payloads)
        self.last_at = at

    @property
    def distinct(self) -> int:
        return len(self.first_at)


class BareSubscriber:
    """paho at QoS 1 with automatic acknowledgement, a persistent session; only counts."""

    def __init__(self, port, rec: Receiver, workdir: Path, max_batch: int):
        self.port, self.rec = port, rec
        self.client_id = f"bench-bare-{uuid.uuid4().hex[:6]}"

    def start(self):
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False)
        subscribed = threading.Event()
        client.on_message = lambda _c, _u, msg: self.rec.saw([msg.payload], time.monotonic())
        client.on_subscribe = lambda *a: subscribed.set()
        client.on_connect = lambda c, *a: c.subscribe([(f"{PREFIX}/+/{k}", 1) for k in ("telemetry", "status", "heartbeat")])
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        subscribed.wait(10)
        self.client = client

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


class ConsumerReceiver:
    """The MqttConsumer with a handler that inserts one row per message into SQLite and
    commits once per batch."""

    def __init__(self, port, rec: Receiver, workdir: Path, max_batch: int):
        self.rec = rec
        self.db = sqlite3.connect(workdir / f"handled-{uuid.uuid4().hex[:6]}.db", check_same_thread=False,
                                  isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE handled (mid INTEGER, topic TEXT, n INTEGER)")
        self.client_id = f"bench-ingest-{uuid.uuid4().hex[:6]}"
        self.cfg = ConsumerConfig(broker=parse_broker_url(f"mqtt://127.0.0.1:{port}"), prefix=PREFIX,
                                  client_id=self.client_id, max_batch=max_batch)

    def _handle(self, batch):
        self.db.execute("BEGIN")
        self.db.executemany("INSERT INTO handled VALUES (?, ?, ?)", [(m.mid, m.topic, len(m.payload)) for m in batch])
        self.db.execute("COMMIT")
        self.rec.saw([m.payload for m in batch], time.monotonic())

    def start(self):
        self.consumer = MqttConsumer(self.cfg, self._handle, lambda batch, reason: None)
        self.consumer.start()
        self.thread = threading.Thread(target=self.consumer.run, daemon=True)
        self.thread.start()

    def stop(self):
        self.consumer.request_stop()
        self.thread.join(10)


RECEIVERS = {"bare": BareSubscriber, "consumer": ConsumerReceiver}


def forget_session(port, client_id: str) -> None:
    """End a persistent session: left behind, it would keep queueing every later run's
    messages in the broker (and in its persistence file) for a receiver that is gone."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    done = threading.Event()
    client.on_connect = lambda *a: done.set()
    client.connect("127.0.0.1", port, clean_start=True)  # no session expiry: gone at disconnect
    client.loop_start()
    done.wait(10)
    client.disconnect()
    client.loop_stop()


def _publish(port, messages, rate):
    ctx = mp.get_context("spawn")
    ready, go, results = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_publisher, args=(port, messages, rate, ready, go, results))
    proc.start()
    ready.wait(30)
    go.set()
    return proc, results


def _settle(rec: Receiver, expected: int, quiet_s: float = 5.0) -> None:
    last_progress, seen = time.monotonic(), -1
    while rec.distinct < expected and time.monotonic() - last_progress < quiet_s:
        if rec.distinct != seen:
            seen, last_progress = rec.distinct, time.monotonic()
        time.sleep(0.02)
    time.sleep(0.2)


def run_once(port, messages, receiver_kind, mode, rate, max_batch, workdir):
    """``live``: receiver up, publisher as fast as it goes; ``paced``: the same at ``rate``;
    ``backlog``: the receiver's session is left with every message queued, then it comes
    back and drains them (its own capacity, without the publisher in the way)."""
    first_pos: dict[bytes, int] = {}
    for pos, (_t, p) in enumerate(messages):
        first_pos.setdefault(p, pos)
    rec = Receiver()
    receiver = RECEIVERS[receiver_kind](port, rec, workdir, max_batch)
    receiver.start()
    if mode == "backlog":
        receiver.stop()  # the session stays, with its subscription: messages queue for it
    proc, results = _publish(port, messages, rate if mode == "paced" else 0)
    t_pub, _t_acked, unacked = results.get(timeout=300)
    proc.join(30)
    t0 = t_pub[0]
    if mode == "backlog":
        time.sleep(0.5)
        t0 = time.monotonic()
        receiver.start()
    _settle(rec, len(first_pos))
    receiver.stop()
    forget_session(port, receiver.client_id)
    lat = np.array([at - t_pub[first_pos[p]] for p, at in rec.first_at.items() if p in first_pos])
    return {
        "rate": rec.count / max(rec.last_at - t0, 1e-9),
        "p50_ms": float(np.percentile(lat, 50) * 1000) if len(lat) else float("nan"),
        "p99_ms": float(np.percentile(lat, 99) * 1000) if len(lat) else float("nan"),
        "lost": len(first_pos) - rec.distinct,
        "unacked_publishes": unacked,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classrooms", type=int, default=20)
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--messages", type=int, default=30000)
    ap.add_argument("--rate", type=float, default=1000.0, help="paced runs: messages/s")
    ap.add_argument("--paced-seconds", type=float, default=5.0)
    ap.add_argument("--max-batch", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()

    t = time.perf_counter()
    messages = fleet_messages(args.classrooms, args.devices, args.messages)
    paced = messages[: int(args.rate * args.paced_seconds)]
    print(f"fleet: {args.classrooms} classrooms x {args.devices} devices; {len(messages)} messages "
          f"(avg {statistics.mean(len(p) for _, p in messages):.0f} B) generated in {time.perf_counter() - t:.1f} s")
    with tempfile.TemporaryDirectory(prefix="wl-bench-mqtt-") as tmp:
        broker = MosquittoBroker(Path(tmp) / "mosquitto")
        broker.start()
        try:
            rows = {kind: {mode: [run_once(broker.port, paced if mode == "paced" else messages, kind, mode, args.rate,
                                           args.max_batch, Path(tmp)) for _ in range(args.repeat)]
                           for mode in ("live", "backlog", "paced")}
                    for kind in ("bare", "consumer")}
        finally:
            broker.stop()
            dropped = "Outgoing messages are being dropped" in broker.log_text()

    def med(runs, key):
        return statistics.median(r[key] for r in runs)

    print(f"{'receiver':<9} | {'live msg/s':>10} {'lost':>4} | {'backlog msg/s':>13} {'lost':>4} | "
          f"paced {args.rate:g} msg/s: {'p50 ms':>6} {'p99 ms':>6} {'lost':>4}")
    for kind, r in rows.items():
        print(f"{kind:<9} | {med(r['live'], 'rate'):>10,.0f} {sum(x['lost'] for x in r['live']):>4} | "
              f"{med(r['backlog'], 'rate'):>13,.0f} {sum(x['lost'] for x in r['backlog']):>4} | "
              f"{'':{len(f'paced {args.rate:g} msg/s:')}} {med(r['paced'], 'p50_ms'):>6.1f} "
              f"{med(r['paced'], 'p99_ms'):>6.1f} {sum(x['lost'] for x in r['paced']):>4}")
    for mode in ("live", "backlog"):
        ratio = med(rows["consumer"][mode], "rate") / med(rows["bare"][mode], "rate")
        print(f"consumer / bare, {mode}: {ratio:.2f}")
    print("live: publisher and receiver at once (from the first publish to the last message received); "
          "backlog: the receiver drains messages queued for its session")
    if dropped:
        print("WARNING: the broker dropped messages (see its queue limits)")


if __name__ == "__main__":
    main()

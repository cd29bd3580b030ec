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

Each receiver is measured twice: saturated (published as fast as possible: messages/s
from the first publish to the last message handled) and paced at ``--rate`` messages/s
for ``--paced-seconds`` (publish→handled latency p50/p99, which a saturated run would only
show as queueing). ``lost`` counts distinct messages never received. Latency uses the
system-wide monotonic clock in both processes.
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

from mqtt_broker import MosquittoBroker  # noqa: E402

from wattline.simulator.devices import DeviceFleetSimulator, campus_fleet, encode  # noqa: E402
from wattline.sources.mqtt import ConsumerConfig, MqttConsumer, parse_broker_url  # noqa: E402

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
    """Arrival (or handled) instants per distinct payload."""

    def __init__(self, index: dict[bytes, int]):
        self.index = index
        self.first_at = np.full(len(set(index.values())), np.nan)
        self.count = 0
        self.last_at = 0.0
        self.lock = threading.Lock()

    def saw(self, payloads, at: float) -> None:
        with self.lock:
            for p in payloads:
                i = self.index.get(p)
                if i is not None and np.isnan(self.first_at[i]):
                    self.first_at[i] = at
            self.count += len(payloads)
            self.last_at = at

    @property
    def distinct(self) -> int:
        return int(np.count_nonzero(~np.isnan(self.first_at)))


def _bare(port, rec: Receiver):
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-bare-{uuid.uuid4().hex[:6]}")
    subscribed = threading.Event()
    client.on_message = lambda _c, _u, msg: rec.saw([msg.payload], time.monotonic())
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_connect = lambda c, *a: c.subscribe([(f"{PREFIX}/+/{k}", 1) for k in ("telemetry", "status", "heartbeat")])
    client.connect("127.0.0.1", port)
    client.loop_start()
    subscribed.wait(10)
    return lambda: (client.disconnect(), client.loop_stop())


def _consumer(port, rec: Receiver, max_batch: int, workdir: Path):
    db = sqlite3.connect(workdir / f"handled-{uuid.uuid4().hex[:6]}.db", check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE handled (mid INTEGER, topic TEXT, n INTEGER)")

    def handle(batch):
        db.execute("BEGIN")
        db.executemany("INSERT INTO handled VALUES (?, ?, ?)", [(m.mid, m.topic, len(m.payload)) for m in batch])
        db.execute("COMMIT")
        rec.saw([m.payload for m in batch], time.monotonic())

    cfg = ConsumerConfig(broker=parse_broker_url(f"mqtt://127.0.0.1:{port}"), prefix=PREFIX,
                         client_id=f"bench-ingest-{uuid.uuid4().hex[:6]}", max_batch=max_batch)
    consumer = MqttConsumer(cfg, handle, lambda batch, reason: None)
    consumer.start()
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    return lambda: (consumer.request_stop(), thread.join(10), db.close())


def run_once(port, messages, receiver_kind, rate, max_batch, workdir):
    index: dict[bytes, int] = {}
    first_pos: list[int] = []
    for pos, (_t, p) in enumerate(messages):
        if p not in index:
            index[p] = len(first_pos)
            first_pos.append(pos)
    rec = Receiver(index)
    stop = _bare(port, rec) if receiver_kind == "bare" else _consumer(port, rec, max_batch, workdir)
    ctx = mp.get_context("spawn")
    ready, go, results = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_publisher, args=(port, messages, rate, ready, go, results))
    proc.start()
    ready.wait(30)
    go.set()
    t_pub, _t_acked, unacked = results.get(timeout=300)
    proc.join(30)
    expected = len(first_pos)
    last_progress, seen = time.monotonic(), -1
    while rec.distinct < expected and time.monotonic() - last_progress < 5:
        if rec.distinct != seen:
            seen, last_progress = rec.distinct, time.monotonic()
        time.sleep(0.05)
    time.sleep(0.2)
    stop()
    lat = rec.first_at - t_pub[np.asarray(first_pos)]
    lat = lat[~np.isnan(lat)]
    return {
        "rate": rec.count / max(rec.last_at - t_pub[0], 1e-9),
        "p50_ms": float(np.percentile(lat, 50) * 1000) if len(lat) else float("nan"),
        "p99_ms": float(np.percentile(lat, 99) * 1000) if len(lat) else float("nan"),
        "lost": expected - rec.distinct,
        "unacked_publishes": unacked,
        "received": rec.count,
        "sent": len(messages),
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
            rows = {}
            for kind in ("bare", "consumer"):
                sat = [run_once(broker.port, messages, kind, 0, args.max_batch, Path(tmp)) for _ in range(args.repeat)]
                pace = [run_once(broker.port, paced, kind, args.rate, args.max_batch, Path(tmp))
                        for _ in range(args.repeat)]
                rows[kind] = (sat, pace)
        finally:
            broker.stop()
            dropped = "Outgoing messages are being dropped" in broker.log_text()

    def med(runs, key):
        return statistics.median(r[key] for r in runs)

    print(f"{'receiver':<10} {'saturated msg/s':>16} {'lost':>5} {'p50 ms':>8} {'p99 ms':>8}   "
          f"paced {args.rate:g}/s: {'p50 ms':>7} {'p99 ms':>7} {'lost':>5}")
    for kind, (sat, pace) in rows.items():
        print(f"{kind:<10} {med(sat, 'rate'):>16,.0f} {sum(r['lost'] for r in sat):>5} {med(sat, 'p50_ms'):>8.1f} "
              f"{med(sat, 'p99_ms'):>8.1f}   {'':>{len(f'paced {args.rate:g}/s:')}} {med(pace, 'p50_ms'):>7.1f} "
              f"{med(pace, 'p99_ms'):>7.1f} {sum(r['lost'] for r in pace):>5}")
    ratio = med(rows["consumer"][0], "rate") / med(rows["bare"][0], "rate")
    print(f"consumer / bare QoS 1 rate: {ratio:.2f}" + ("   WARNING: the broker dropped messages" if dropped else ""))


if __name__ == "__main__":
    main()

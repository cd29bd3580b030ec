"""A simulated fleet through a bench-owned Mosquitto into the whole pipeline, beside the
bare QoS 1 rate of the same messages through the same broker.

    .venv/bin/python bench/mqtt_ingest.py [--classrooms 10] [--devices 6] [--messages 6000]
        [--ingesters 1,2] [--rate 200] [--paced-seconds 5] [--max-batch 500]
        [--telemetry-url postgresql+psycopg://root@127.0.0.1:5432/bench_mqtt]

The messages are the simulated campus fleet's (``wattline.simulator.devices`` with its
faults: seed-002 telemetry, heartbeats and status; firmware resets, buffered bursts,
out-of-order and repeated messages), generated first, then published at QoS 1 by a
separate process (one paho client, every return code checked) to a Mosquitto started on
a free port with ``tests/mosquitto/test.conf`` (persistence, queue limits raised).

In one run:

* **bare**: a paho subscriber at QoS 1 that only counts; messages/s from the first
  publish to the last message received, the publisher going as fast as it can;
* **pipeline**, for each ``--ingesters`` count (1: ``wattline mqtt``; 2: two of them in
  one ``--group``, a shared subscription), each on fresh databases (SQLite files, or the
  PostgreSQL database of ``--telemetry-url``, dropped and created again): the real
  ingester as separate processes (``bench/timed_ingester.py``: ``wattline mqtt`` plus a
  hook that logs the instant each batch's handler returned, i.e. committed);
  ``live``: the same messages published as fast as one client goes, messages/s from the
  first publish to the last commit; then ``paced``: the fleet's next messages at
  ``--rate`` messages/s for ``--paced-seconds`` (publish→committed latency p50/p99;
  under saturation latency only measures queueing, so the live run's is printed too).

Latency of a message = the instant its batch committed minus the instant ``publish()``
was called for it, both on the system-wide monotonic clock. ``lost`` is checked after
the run on the database: the set of (device, timestamp) of every telemetry message
published must equal the set of energy readings stored (a reading is stored once by
its primary key) with its ledger entry, and every distinct message must be a raw event.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from wattline.domain import timeutil
from wattline.simulator.devices import DeviceFleetSimulator, campus_fleet, encode

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))
# the publisher is a spawned process that imports this module again: heavier imports
# (SQLAlchemy, the store, pytest) are made where they are used, not here

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


def digest(payload: bytes) -> str:
    return hashlib.blake2b(payload, digest_size=8).hexdigest()


# -- the publisher process -------------------------------------------------------------


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
        info.wait_for_publish(120)
    results.put((t_pub, sum(not i.is_published() for i in infos)))
    client.disconnect()
    client.loop_stop()


def publish(port, messages, rate: float = 0.0):
    """Publish in a separate process; returns (publish instants, publishes never acknowledged)."""
    ctx = mp.get_context("spawn")
    ready, go, results = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_publisher, args=(port, messages, rate, ready, go, results))
    proc.start()
    ready.wait(30)
    go.set()
    t_pub, unacked = results.get(timeout=600)
    proc.join(30)
    return t_pub, unacked


# -- bare ----------------------------------------------------------------------------


def bare_rate(port, messages) -> dict:
    """A QoS 1 subscriber that only counts (paho acknowledges at once)."""
    count, last = [0], [0.0]
    expected = len(messages)
    done = threading.Event()

    def on_message(_c, _u, _msg):
        count[0] += 1
        last[0] = time.monotonic()
        if count[0] >= expected:
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-bare-{uuid.uuid4().hex[:6]}")
    subscribed = threading.Event()
    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_connect = lambda c, *a: c.subscribe([(f"{PREFIX}/+/{k}", 1) for k in ("telemetry", "status", "heartbeat")])
    client.connect("127.0.0.1", port)
    client.loop_start()
    subscribed.wait(10)
    t_pub, unacked = publish(port, messages)
    done.wait(60)
    client.disconnect()
    client.loop_stop()
    # retained status messages of the run may be delivered again to nobody: count what arrived
    return {"rate": count[0] / max(last[0] - t_pub[0], 1e-9), "received": count[0], "lost": expected - count[0],
            "unacked": unacked}


# -- the pipeline ------------------------------------------------------------------------


class Ingesters:
    """``n`` ``wattline mqtt`` processes (one group when n > 1) with their commit logs."""

    def __init__(self, n: int, port: int, dbs, workdir: Path, max_batch: int):
        self.logs = [workdir / f"commits-{i}.log" for i in range(n)]
        self.errs = [workdir / f"ingester-{i}.err" for i in range(n)]
        group = ["--group", "bench"] if n > 1 else []
        self.procs = []
        for i in range(n):
            env = {**dbs.env(), "BENCH_COMMIT_LOG": str(self.logs[i])}
            self.procs.append(subprocess.Popen(
                [sys.executable, str(BENCH / "timed_ingester.py"), "--broker", f"mqtt://127.0.0.1:{port}",
                 "--client-id", f"bench-ingest-{i}-{uuid.uuid4().hex[:6]}", "--max-batch", str(max_batch), *group],
                env=env, stdout=subprocess.DEVNULL, stderr=self.errs[i].open("w")))
        deadline = time.monotonic() + 60
        while not all("subscribed" in e.read_text() for e in self.errs if e.exists()):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                raise RuntimeError("an ingester did not start:\n" + "\n".join(e.read_text()[-2000:] for e in self.errs))
            time.sleep(0.05)
        self._pos = [0] * n
        self.first_commit: dict[str, float] = {}

    def read_commits(self) -> None:
        for i, path in enumerate(self.logs):
            if not path.exists():
                continue
            with path.open() as f:
                f.seek(self._pos[i])
                chunk = f.read()
            end = chunk.rfind("\n") + 1  # a line being written stays for the next read
            self._pos[i] += len(chunk[:end].encode())
            for line in chunk[:end].splitlines():
                t, h = line.split()
                t = float(t)
                if t < self.first_commit.get(h, float("inf")):
                    self.first_commit[h] = t

    def wait_committed(self, digests: set[str], quiet_s: float = 20.0) -> int:
        """Until every digest is committed (or nothing new for ``quiet_s``); the ones missing."""
        last_progress, seen = time.monotonic(), -1
        while True:
            self.read_commits()
            missing = len(digests - self.first_commit.keys())
            if not missing:
                return 0
            if missing != seen:
                seen, last_progress = missing, time.monotonic()
            elif time.monotonic() - last_progress > quiet_s:
                return missing
            time.sleep(0.05)

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p, e in zip(self.procs, self.errs):
            if p.wait(60) != 0:
                raise RuntimeError(f"an ingester exited {p.returncode}:\n{e.read_text()[-2000:]}")


def expected_readings(messages) -> tuple[set, set[str]]:
    """(esp32, device, ts) of every telemetry message, and the digests of the distinct
    payloads (telemetry, status and heartbeat: each is kept as a raw event)."""
    keys, docs = set(), set()
    for topic, payload in messages:
        docs.add(digest(payload))
        if topic.endswith("/telemetry"):
            d = json.loads(payload)
            keys.add((d["esp32_name"], d["device_id"], timeutil.parse_instant(d["timestamp"])))
    return keys, docs


def latency(t_pub, messages, commits: dict[str, float]) -> np.ndarray:
    first: dict[str, float] = {}
    for t, (_topic, payload) in zip(t_pub, messages):
        first.setdefault(digest(payload), t)  # a repeated message: from its first publish
    return np.array([commits[h] - t for h, t in first.items() if h in commits])


def note(text: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def pipeline_run(n_ingesters: int, port: int, live, paced, args, workdir: Path) -> dict:
    from campus_setup import fresh_databases, readings_without_entry, register_fleet, stored_readings

    note(f"{n_ingesters} ingester(s): fresh databases")
    dbs_info = fresh_databases(workdir, args.telemetry_url)
    dbs = dbs_info.open()
    series = register_fleet(dbs, campus_fleet(args.classrooms, args.devices, 0))
    note("starting the ingesters")
    ing = Ingesters(n_ingesters, port, dbs_info, workdir, args.max_batch)
    try:
        out = {}
        for mode, messages, rate in (("live", live, 0.0), ("paced", paced, args.rate)):
            # retained status messages of earlier runs reach a new subscription at once: not this run's
            ing.read_commits()
            ing.first_commit.clear()
            note(f"{mode}: publishing {len(messages)} messages")
            t_pub, unacked = publish(port, messages, rate)
            note(f"{mode}: published; waiting for the commits")
            all_digests = {digest(p) for _t, p in messages}
            missing = ing.wait_committed(all_digests)
            lat = latency(t_pub, messages, ing.first_commit)
            last_commit = max(ing.first_commit[h] for h in all_digests if h in ing.first_commit)
            out[mode] = {"rate": len(messages) / (last_commit - t_pub[0]), "p50_ms": float(np.percentile(lat, 50) * 1e3),
                         "p99_ms": float(np.percentile(lat, 99) * 1e3), "uncommitted": missing, "unacked": unacked}
    finally:
        ing.stop()
    note("checking the database")
    keys, docs = expected_readings(live + paced)
    stored, rows = stored_readings(dbs, series)
    out["not_in_ledger"] = readings_without_entry(dbs, series)
    with dbs.telemetry.connect() as c:
        raw = c.exec_driver_sql("SELECT COUNT(*) FROM raw_events").scalar()
    dbs.dispose()
    out["lost"] = len(keys - stored)
    out["extra"] = len(stored - keys) + (rows - len(stored))
    out["readings"] = len(keys)
    out["raw_events_missing"] = len(docs) - raw
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classrooms", type=int, default=10)
    ap.add_argument("--devices", type=int, default=6)
    ap.add_argument("--messages", type=int, default=6000, help="messages of the live runs")
    ap.add_argument("--ingesters", default="1,2", help="ingester counts to measure, e.g. 1,2 (>1: one --group)")
    ap.add_argument("--rate", type=float, default=200.0, help="paced runs: messages/s (seed target: 100)")
    ap.add_argument("--paced-seconds", type=float, default=5.0)
    ap.add_argument("--max-batch", type=int, default=500)
    ap.add_argument("--telemetry-url", default=None,
                    help="PostgreSQL telemetry database, dropped and re-created: its name must start with bench_ "
                         "(e.g. postgresql+psycopg://root@127.0.0.1:5432/bench_mqtt); default SQLite")
    args = ap.parse_args()
    counts = [int(x) for x in args.ingesters.split(",") if x.strip()]
    from mqtt_broker import MosquittoBroker

    t = time.perf_counter()
    n_paced = int(args.rate * args.paced_seconds)
    messages = fleet_messages(args.classrooms, args.devices, args.messages + n_paced)
    live, paced = messages[:args.messages], messages[args.messages:]
    n_tel = sum(tp.endswith("/telemetry") for tp, _ in live)
    print(f"fleet: {args.classrooms} classrooms x {args.devices} devices; {len(live)} live messages ({n_tel} telemetry) "
          f"+ {len(paced)} paced (avg {statistics.mean(len(p) for _, p in messages):.0f} B), generated in "
          f"{time.perf_counter() - t:.1f} s")
    with tempfile.TemporaryDirectory(prefix="wl-bench-mqtt-") as tmp:
        broker = MosquittoBroker(Path(tmp) / "mosquitto")
        broker.start()
        try:
            note("bare subscriber")
            bare = bare_rate(broker.port, live)
            runs = {n: pipeline_run(n, broker.port, live, paced, args, Path(tmp) / f"run-{n}") for n in counts}
        finally:
            broker.stop()
            dropped = "Outgoing messages are being dropped" in broker.log_text()
            from campus_setup import drop_database

            drop_database(args.telemetry_url)
    backend = "PostgreSQL" if args.telemetry_url else "SQLite"
    print(f"bare QoS 1 subscriber (counts only): {bare['rate']:,.0f} msg/s, lost {bare['lost']}")
    print(f"{'pipeline (' + backend + ')':<24} | {'live msg/s':>10} {'ratio':>5} {'p50 ms':>7} {'p99 ms':>8} | "
          f"paced {args.rate:g} msg/s: {'p50 ms':>6} {'p99 ms':>6} | lost extra")
    for n, r in runs.items():
        lv, pc = r["live"], r["paced"]
        name = "1 ingester" if n == 1 else f"{n} ingesters, --group"
        print(f"{name:<24} | {lv['rate']:>10,.0f} {lv['rate'] / bare['rate']:>5.2f} {lv['p50_ms']:>7.0f} "
              f"{lv['p99_ms']:>8.0f} | {'':{len(f'paced {args.rate:g} msg/s:')}} {pc['p50_ms']:>6.1f} "
              f"{pc['p99_ms']:>6.1f} | {r['lost']:>4} {r['extra']:>5}")
        problems = [f"{k}={v}" for k, v in (("uncommitted", lv["uncommitted"] + pc["uncommitted"]),
                                             ("unacked publishes", lv["unacked"] + pc["unacked"]),
                                             ("raw events missing", r["raw_events_missing"]),
                                             ("readings without a ledger entry", r["not_in_ledger"])) if v]
        if problems or r["lost"] or r["extra"]:
            print(f"  WARNING {name}: " + ", ".join(problems + [f"lost={r['lost']}", f"extra={r['extra']}"]))
    print(f"checked after each run: {runs[counts[0]]['readings']:,} published readings, each stored exactly once "
          "and in the ledger (lost = published (device, ts) not stored; extra = stored but not published, or twice)")
    print("ratio: live pipeline msg/s / bare msg/s; latency: publish() to the commit of the batch holding it")
    if dropped:
        print("WARNING: the broker dropped messages (see its queue limits)")


if __name__ == "__main__":
    main()

"""The fault suite: a fleet workload on 3 workers and 2 ingesters while things die.

    .venv/bin/python bench/faults.py            # full size (a few minutes)
    .venv/bin/python bench/faults.py --small    # the CI size (tests/test_fault_suite.py)

Workload, through the real pieces over loopback:

* plant backfills and a daily sync through the emulated Solarman and Sungrow clouds,
* minute polling of systems (the engine's periodic poll, plus deferred polls),
* a device fleet publishing over MQTT (QoS 1) to 2 ``wattline mqtt --group`` ingesters,

run twice:

1. **reference**: one process, no faults — the jobs called in-process, the fleet's
   messages handed straight to the device pipeline;
2. **faulted**: on PostgreSQL, 3 ``wattline worker`` processes (procrastinate) and 2
   ingesters, while the suite SIGKILLs workers and ingesters at seeded random moments
   (a supervisor restarts them, as systemd would), restarts Mosquitto, crash-restarts
   PostgreSQL (``pg_ctl -m immediate``) and the clouds fail 20 % of calls (429 with
   Retry-After, 500, 503).

The database and broker it restarts are its own: a cluster made with ``initdb`` in a
temporary directory and a Mosquitto started with ``tests/mosquitto/test.conf``, each on a
free port. Afterwards the faulted run's telemetry must equal the reference: readings,
ledger entries, aggregates, plant summaries, and the cost and energy of every
classroom per local day; no periodic job may have been deferred twice for one period;
every failed call and job must be on record (sync logs, poll sessions, job events).
It prints the load held, the faults injected and the lost / duplicated counts, and
exits non-zero on any difference.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
from collections import Counter
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the test world: plants, clouds, broker, fleet
sys.path.insert(0, str(REPO / "bench"))

from world import CLOUD_NOW  # noqa: E402

# every process of the run (this one, workers, ingesters) sees the clouds' "now"
# (forced: a clock offset inherited from a test run would put "now" years past the clouds'
# history, and every backfill would then walk empty months)
os.environ.pop("WATTLINE_CLOCK_OFFSET_S", None)
os.environ["WATTLINE_CLOCK"] = datetime.fromtimestamp(CLOUD_NOW, timezone.utc).isoformat()
os.environ.setdefault("WATTLINE_LOG_LEVEL", "WARNING")

import sqlalchemy as sa  # noqa: E402

from fault_world import FleetWorld, World  # noqa: E402
from mqtt_broker import MosquittoBroker  # noqa: E402
from private_pg import PrivatePostgres  # noqa: E402
from wattline.simulator.vendor_cloud.server import BackgroundCloud  # noqa: E402
from world import cloud_config  # noqa: E402

WATTLINE = str(Path(sys.executable).with_name("wattline"))
WORKER_CONCURRENCY = 4
REDIS_URL = os.environ.get("WATTLINE_TEST_REDIS", "redis://127.0.0.1:6379/0")
FAULT_KINDS = ("429", "500", "503")  # "slow" and "malformed" change what a run may store


@dataclass(frozen=True)
class Size:
    plants: int
    history_days: int
    systems: int
    controllers: int
    devices_per_controller: int
    fleet_sim_s: int
    fleet_speed: float
    worker_kills: int
    ingester_kills: int
    calls_per_minute: int  # each plant vendor account's limit in the faulted run, held across workers (Redis)


SMALL = Size(plants=2, history_days=6, systems=4, controllers=2, devices_per_controller=3,
             fleet_sim_s=1200, fleet_speed=120, worker_kills=2, ingester_kills=1,
             calls_per_minute=30)
FULL = Size(plants=12, history_days=60, systems=60, controllers=8, devices_per_controller=8,
            fleet_sim_s=7200, fleet_speed=120, worker_kills=6, ingester_kills=4,
            calls_per_minute=150)


# ------------------------------------------------------------------ processes


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict
    log: Path
    popen: subprocess.Popen | None = None
    starts: int = 0
    kills: int = 0
    log_offset: int = 0  # the log's size at the last start

    def start(self) -> None:
        self.log_offset = self.log.stat().st_size if self.log.exists() else 0
        self.popen = subprocess.Popen(self.argv, env=self.env, stdout=subprocess.DEVNULL,
                                      stderr=self.log.open("a"), start_new_session=True)
        self.starts += 1

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)
            self.kills += 1

    def stop(self) -> None:
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


class Supervisor:
    """Restarts whatever died (killed by the suite, or exited on a lost database), as a
    service manager would; a thread checks every 0.5 s."""

    def __init__(self, procs: list[Proc]):
        self.procs = procs
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.lock = threading.Lock()

    def start(self) -> "Supervisor":
        for p in self.procs:
            p.start()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            with self.lock:
                for p in self.procs:
                    if not p.alive():
                        p.start()
                        self.restarts += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for p in self.procs:
            p.stop()


def cli(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    r = subprocess.run([WATTLINE, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode:
        raise RuntimeError(f"wattline {' '.join(args)} exited {r.returncode}: {r.stderr[-2000:]}")
    return r


def cli_retrying(env: dict, *args: str, attempts: int = 20, timeout: float = 120) -> subprocess.CompletedProcess:
    """A CLI call that may meet the database restarting: tried again a moment later."""
    for k in range(attempts):
        try:
            return cli(env, *args, timeout=timeout)
        except RuntimeError:
            if k == attempts - 1:
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


# ------------------------------------------------------------------ the run


@dataclass
class Faults:
    worker_kills: int = 0
    ingester_kills: int = 0
    mosquitto_restarts: int = 0
    postgres_restarts: int = 0
    postgres_down_s: float = 0.0
    vendor_faults: dict = field(default_factory=dict)
    vendor_calls: int = 0
    by_endpoint: dict = field(default_factory=dict)


def wait_until(pred, timeout_s: float, step_s: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if pred():
                return True
        except sa.exc.OperationalError:  # the database restarting
            pass
        time.sleep(step_s)
    return False


def run_faulted(world: World, fleet: FleetWorld, pg: PrivatePostgres, broker: MosquittoBroker, queue_url: str,
                size: Size, rng: random.Random, work: Path) -> tuple[Faults, dict, object]:
    faults = Faults()
    # the vendor limiter's state in Redis (the machine's, under a namespace of this run only)
    env = dict(world.env(), WATTLINE_JOBS_URL=queue_url, WATTLINE_REDIS_URL=REDIS_URL,
               WATTLINE_REDIS_NAMESPACE=f"faults-{os.getpid()}-{int(time.time())}:")
    cli(env, "db", "upgrade")
    workers = [Proc(f"worker-{k}", [WATTLINE, "worker", "--concurrency", str(WORKER_CONCURRENCY)], env, work / f"worker-{k}.log")
               for k in range(3)]
    ingesters = [Proc(f"ingester-{k}", [WATTLINE, "mqtt", "--broker", broker.url, "--group", "fleet",
                                        "--client-id", f"fault-ingester-{k}", "--max-batch", "100"],
                      env, work / f"ingester-{k}.log") for k in range(2)]
    sup = Supervisor(workers + ingesters).start()
    try:
        load, published = _drive(world, fleet, pg, broker, size, rng, env, sup, workers, ingesters, faults)
    finally:
        sup.stop()
        forget_namespace(env["WATTLINE_REDIS_NAMESPACE"])
    faults.vendor_faults = dict(world.cloud.state.stats.faults())
    faults.vendor_calls = len(world.cloud.state.stats.calls)
    faults.by_endpoint = dict(Counter(f"{c.vendor}:{c.endpoint}:{c.fault or c.status}" for c in world.cloud.state.stats.calls))
    # what each ingester took of the shared subscription since its last start (its stop line)
    load["split"] = [int((re.findall(r"mqtt: stopped; received (\d+)", p.log.read_text()) or [0])[-1])
                     for p in ingesters]
    load.update(restarts=sup.restarts, worker_starts=sum(p.starts for p in workers),
                ingester_starts=sum(p.starts for p in ingesters))
    return faults, load, published


def forget_namespace(namespace: str) -> None:
    """This run's keys (limiter state, latest values) out of the shared Redis."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{namespace}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def reconnected(broker: MosquittoBroker, ingesters: list[Proc]) -> bool:
    """Every ingester connected to the broker since its last start, and a moment for the
    SUBSCRIBE that follows each connect."""
    since = broker.log_text().rsplit(" running", 1)[-1]
    if all(f"as fault-ingester-{k} " in since for k in range(len(ingesters))):
        time.sleep(0.5)
        return True
    return False


def subscribed(p: Proc) -> bool:
    """Alive and subscribed since its last start."""
    if not p.alive() or not p.log.exists():
        return False
    with p.log.open("rb") as f:
        f.seek(p.log_offset)
        return b"mqtt: subscribed" in f.read()


def _drive(world, fleet, pg, broker, size, rng, env, sup, workers, ingesters, faults) -> tuple[dict, object]:
    queue_url = env["WATTLINE_JOBS_URL"]
    assert wait_until(lambda: all(subscribed(p) for p in ingesters), 60), \
        "the ingesters never subscribed"
    t0 = time.monotonic()
    for plant in world.plant_ids:
        cli(env, "jobs", "defer", "backfill", "--plant", str(plant))
    cli(env, "jobs", "defer", "poll")
    # the faults, in a seeded order at seeded moments, one stage of the fleet's stream each
    plan = (["worker"] * size.worker_kills + ["ingester"] * size.ingester_kills + ["mosquitto", "postgres"])
    rng.shuffle(plan)
    run = fleet.publish(broker.port, stages=len(plan) + 1).start()
    for k, fault in enumerate(plan):
        time.sleep(rng.uniform(0.5, 2.5))
        if fault == "mosquitto":
            # Mosquitto 2.0 does not restore shared subscriptions after a restart, so what a
            # device publishes before a member of the group has subscribed again has nowhere
            # to go (bench/mosquitto_shared_restart.py, README "Fault suite"): the broker is
            # restarted with the group connected and the fleet between two stages
            wait_until(lambda: all(subscribed(p) for p in ingesters), 60, step_s=0.2)
            run.pause()
        with sup.lock:
            if fault == "worker":
                rng.choice(workers).kill()
                faults.worker_kills += 1
            elif fault == "ingester":
                rng.choice(ingesters).kill()
                faults.ingester_kills += 1
            elif fault == "mosquitto":
                broker.restart()
                faults.mosquitto_restarts += 1
                wait_until(lambda: reconnected(broker, ingesters), 30, step_s=0.1)
            else:
                faults.postgres_down_s += pg.restart("immediate")
                faults.postgres_restarts += 1
        run.next_stage()
    while any(not g.is_set() for g in run.gates):
        run.next_stage()
    run.join()
    publish_s = time.monotonic() - t0
    # backfills first, then the day's sync, as in the reference
    assert wait_until(lambda: world.engine_jobs_open(queue_url, "backfill") == 0, 600), "backfills never finished"
    cli_retrying(env, "jobs", "defer", "sync")
    cli_retrying(env, "jobs", "defer", "poll")
    cli_retrying(env, "jobs", "wait", "--timeout", "600", timeout=660)
    if not wait_until(lambda: fleet.stored_count(world) >= run.published.distinct, 120):
        print(f"devices: {fleet.stored_count(world)} of {run.published.distinct} readings stored after 120 s; "
              f"ingesters alive: {[p.alive() for p in ingesters]}", file=sys.stderr)
    # a system whose every poll so far met a vendor fault is polled again when next due
    # (the engine's minute poll), as in production; bounded, and reported if it never works
    wait_until(lambda: not world.systems_without_success(), 150, step_s=2)
    load = {"elapsed_s": time.monotonic() - t0, "publish_s": publish_s, "published": run.published.telemetry,
            "distinct": run.published.distinct}
    return load, run.published


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="the CI size")
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--fault-rate", type=float, default=0.2)
    ap.add_argument("--keep", action="store_true", help="keep the working directory (logs, databases)")
    args = ap.parse_args(argv)
    size = SMALL if args.small else FULL
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="wattline-faults-"))
    pg = PrivatePostgres(work / "pg").init().start()
    broker = MosquittoBroker(work / "mosquitto", binary=shutil.which("mosquitto") or "/usr/sbin/mosquitto").start()
    clean_cloud = faulty_cloud = None
    try:
        plants = World.plants_for(size.plants, size.history_days)
        systems = World.systems_for(size.systems)
        fleet = FleetWorld(size.controllers, size.devices_per_controller, size.fleet_sim_s, size.fleet_speed,
                           seed=args.seed)
        clean_cloud = BackgroundCloud(cloud_config(plants + systems)).start()
        faulty_cloud = BackgroundCloud(cloud_config(plants + systems, fault_rate=args.fault_rate,
                                                    fault_kinds=FAULT_KINDS, retry_after_s=1,
                                                    seed=args.seed)).start()
        t_ref = time.monotonic()
        reference = World(pg, "reference", work, clean_cloud, plants, systems, fleet)
        reference.run_in_process()
        ref_s = time.monotonic() - t_ref
        faulted = World(pg, "faulted", work, faulty_cloud, plants, systems, fleet, size.calls_per_minute)
        queue_url = pg.create_db("queue")
        faults, load, published = run_faulted(faulted, fleet, pg, broker, queue_url, size, rng, work)
        report = faulted.compare(reference, published, queue_url, sum(faults.vendor_faults.values()),
                                 unlogged_allowance=faults.worker_kills * WORKER_CONCURRENCY)
    finally:
        for c in (clean_cloud, faulty_cloud):
            if c is not None:
                c.stop()
        broker.stop()
        pg.stop("fast")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    return print_report(size, ref_s, faults, load, report)


def print_report(size: Size, ref_s: float, faults: Faults, load: dict, report: dict) -> int:
    minutes = load["elapsed_s"] / 60
    print(f"fault suite ({'small' if size == SMALL else 'full'}): {size}")
    print(f"  reference run (one process, no faults): {ref_s:.1f} s")
    print(f"  faulted run: {load['elapsed_s']:.1f} s; 3 workers ({load['worker_starts']} starts), "
          f"2 ingesters ({load['ingester_starts']} starts; messages received since their last start: "
          f"{load['split']}), {load['restarts']} restarts by the supervisor")
    print(f"  load held: {report['readings'] / load['elapsed_s']:,.0f} readings/s stored, "
          f"{load['published'] / load['publish_s']:,.1f} MQTT messages/s published "
          f"({load['published']} messages, {load['distinct']} distinct readings), "
          f"{report['poll_sessions'] / minutes:,.1f} polls/min")
    print(f"  faults injected: {faults.worker_kills} worker SIGKILLs, {faults.ingester_kills} ingester SIGKILLs, "
          f"{faults.mosquitto_restarts} Mosquitto restarts, {faults.postgres_restarts} PostgreSQL crash-restarts "
          f"({faults.postgres_down_s:.1f} s down), vendor faults {faults.vendor_faults} of {faults.vendor_calls} calls")
    print(f"  vendor calls by endpoint: {faults.by_endpoint}")
    print(f"  on record: {report['failed_sessions']} failed poll sessions, {report['failed_sync_logs']} failed "
          f"sync logs, {report['retried_jobs']} job retries, {report['failed_jobs']} failed jobs, "
          f"{report['superseded_jobs']} superseded (a killed worker's job already queued again: aborted)")
    for name, (lost, extra, changed) in report["tables"].items():
        print(f"  {name:<22} lost {lost:>6}  duplicated/extra {extra:>6}  changed {changed:>6}")
    print(f"  vendor limit held across the workers: busiest minute per account {report['busiest_minute']} "
          f"(limit {size.calls_per_minute})")
    print(f"  periodic jobs deferred twice for one period: {report['periodic_twice']}")
    problems = report["problems"]
    for p in problems:
        print(f"  PROBLEM: {p}")
    print("RESULT: " + ("PASS: 0 lost, 0 duplicated, no periodic job twice" if not problems else "FAIL"))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())

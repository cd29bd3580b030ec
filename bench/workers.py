"""Scale-out of the job engine (issue 12): 1, 2, 3 ``wattline worker`` processes on this
machine, minute polling and plant backfills, beside the same work in one process
without the engine.

    PYTHONPATH=src .venv/bin/python bench/workers.py [--systems 1000] [--workers 1,2,3]
        [--concurrency 4] [--minutes 2] [--latency-s 1] [--plants 6] [--backfill-days 365]
        [--redis redis://127.0.0.1:6379/0]

* PostgreSQL: three fresh databases (main, telemetry, the job queue) on the shared
  server, dropped at the end; latest values in Redis (a namespace of this run).
* Emulated clouds over real HTTP in processes of their own: one for polling (bench
  mode, ``--latency-s`` per call, the setup of ``bench/poll.py``), one for backfills
  (no latency, the clear-sky history of ``bench/backfill.py``).
* Polling as production does it on the engine: the workers' periodic ``poll`` task
  at every minute boundary, one :func:`~wattline.jobs.poll.poll_once` tick over all due
  systems in whichever worker takes it. ``--systems`` of the vendors polled every
  minute (Selectronic, Fronius, SolarEdge, Mondo: Enphase and Amber ask for 1 h /
  5 min and would not be due). Counted: polls finished (sessions written) inside
  ``--minutes`` whole minutes after a warm-up minute. Baseline: one long-lived
  ``Poller`` ticking at the same boundaries in this process (``wattline poll``).
* Backfills: ``--plants`` Solarman plants of ``--backfill-days`` each, deferred as
  ``backfill`` jobs (one lock per plant) when the minute's tick has finished; timed
  from the first defer until every one of them has succeeded; polling is paused
  meanwhile (every system's last poll set in the future: the ticks find none due). Readings/s = readings
  stored for those plants / that time. Baseline: the same number of fresh plants
  backfilled in this process, ``--concurrency`` at once (a worker's job slots).
* CPU: every second from /proc (no psutil here): each worker, each emulation
  process, this process, the PostgreSQL backends of the three databases
  (``pg_stat_activity``) and all PostgreSQL processes (other sessions' included), and
  the machine's busy time: the machine is shared, so its other load is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, text

import backfill as bench_backfill  # bench/backfill.py: databases, the backfill cloud
import poll as bench_poll  # bench/poll.py: the polling clouds and systems

WATTLINE = os.path.join(os.path.dirname(sys.executable), "wattline")
POLL_VENDORS = ("selectronic", "fronius", "solaredge", "mondo")  # poll_interval_s 60
CLK = os.sysconf("SC_CLK_TCK")


# -- CPU from /proc -------------------------------------------------------------------------

def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process, None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK


def machine_busy_s() -> float:
    """CPU seconds the machine was busy since boot (all cores, all processes)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK


def postgres_pids() -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/comm") as f:
                    if f.read().strip() == "postgres":
                        out.append(int(d))
            except OSError:
                pass
    return out


class CpuMeter:
    """CPU seconds per group of processes between ``start`` and ``stop``, sampled every
    second. A process first seen after the first sample (a new PostgreSQL backend)
    counts from zero; one that exits loses at most its last second."""

    def __init__(self, groups: dict[str, list[int]], our_databases: list[str]) -> None:
        self.groups = groups
        self.dbs = our_databases
        self._admin = create_engine(bench_backfill.PG_ADMIN)
        self._first: dict[tuple[str, int], float] = {}
        self._last: dict[tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._sampled = 0

    def _backends(self) -> list[int]:
        with self._admin.connect() as c:
            return [r[0] for r in c.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = ANY(:d)"),
                                             {"d": self.dbs})]

    def _sample(self) -> None:
        groups = dict(self.groups, **{"postgres (these databases)": self._backends(),
                                      "postgres (all)": postgres_pids()})
        for name, pids in groups.items():
            for pid in pids:
                v = cpu_s(pid)
                if v is None:
                    continue
                key = (name, pid)
                self._first.setdefault(key, v if self._sampled == 0 else 0.0)
                self._last[key] = v
        self._sampled += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(1.0)
        self._own = time.thread_time()  # the meter's own CPU: not the measured process's

    def start(self) -> "CpuMeter":
        self._t0, self._busy0 = time.time(), machine_busy_s()
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        self._sample()
        wall, busy = time.time() - self._t0, machine_busy_s() - self._busy0
        self._admin.dispose()
        cpu: dict[str, float] = {}
        for (name, _), last in self._last.items():
            cpu[name] = cpu.get(name, 0.0) + last - self._first[(name, _)]
        if "this process" in cpu:
            cpu["this process"] -= self._own
        return {"wall": wall, "cpu": cpu, "machine": busy,
                "load": os.getloadavg()[0]}


# -- the world ----------------------------------------------------------------------------

def _readings(ctx, plant_ids: list[int]) -> int:
    with ctx.dbs.main.connect() as c:
        series = [r[0] for r in c.execute(text("SELECT id FROM points WHERE asset_id = ANY(:a)"), {"a": plant_ids})]
    with ctx.dbs.telemetry.connect() as c:
        return c.execute(text("SELECT count(*) FROM readings WHERE series_id = ANY(:s)"), {"s": series}).scalar_one()


def _polls_finished(ctx, t0: float, t1: float) -> tuple[int, int]:
    """(finished, succeeded) polls whose session ends in [t0, t1)."""
    with ctx.dbs.telemetry.connect() as c:
        row = c.execute(text("SELECT count(*), count(*) FILTER (WHERE success) FROM sessions "
                             "WHERE started_at_ms + duration_ms >= :a AND started_at_ms + duration_ms < :b"),
                        {"a": int(t0 * 1000), "b": int(t1 * 1000)}).one()
    return int(row[0]), int(row[1])


def add_backfill_plants(ctx, base_url: str, count: int, days: int, label: str) -> list[int]:
    """``count`` fresh Solarman plants starting ``days`` ago on the backfill cloud."""
    from wattline import provisioning

    start = int(time.time()) // 900 * 900 - days * 86400
    with ctx.dbs.main.begin() as conn:
        acc = provisioning.add_vendor_account(conn, ctx.settings, "solarman", f"backfill {label}",
                                              bench_backfill._creds(), base_url=base_url,
                                              rate_limits=provisioning.UNLIMITED)
        return [provisioning.add_vendor_plant(conn, f"{label} {i}", "solarman", f"wk-{label}-{i}", "UTC",
                                              start_operating_time=start, vendor_account_id=acc)
                for i in range(count)]


def next_minute() -> float:
    return (time.time() // 60 + 1) * 60


def sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.time()))


# -- the engine ---------------------------------------------------------------------------

class Engine:
    """The job queue as the bench sees it: defer, watch, count workers."""

    def __init__(self, queue_url: str) -> None:
        from wattline.jobs.engine import build_app

        self.app = build_app(queue_url)
        self.sql = create_engine(queue_url)

    def apply_schema(self) -> None:
        from wattline.jobs.engine import apply_schema

        async def run():
            async with self.app.open_async():
                await apply_schema(self.app)
        asyncio.run(run())

    def defer_backfills(self, plant_ids: list[int]) -> list[int]:
        async def run():
            async with self.app.open_async():
                return [await self.app.configure_task("backfill", lock=f"plant:{p}").defer_async(plant_id=p)
                        for p in plant_ids]
        return asyncio.run(run())

    def statuses(self, job_ids: list[int] | None = None) -> dict[str, int]:
        with self.sql.connect() as c:
            q = "SELECT status::text, count(*) FROM procrastinate_jobs"
            rows = (c.execute(text(q + " WHERE id = ANY(:i) GROUP BY 1"), {"i": job_ids}) if job_ids is not None
                    else c.execute(text(q + " GROUP BY 1")))
            return {r[0]: r[1] for r in rows}

    def idle(self, job_ids: list[int] | None = None) -> bool:
        s = self.statuses(job_ids)
        return not s.get("todo") and not s.get("doing")

    def workers(self) -> int:
        with self.sql.connect() as c:
            return c.execute(text("SELECT count(*) FROM procrastinate_workers")).scalar_one()

    def wait_idle(self, job_ids: list[int] | None = None, timeout: float = 600.0, every: float = 0.2) -> float:
        end = time.monotonic() + timeout
        while not self.idle(job_ids):
            if time.monotonic() > end:
                raise RuntimeError(f"jobs not finished in {timeout:.0f} s: {self.statuses(job_ids)}")
            time.sleep(every)
        return time.time()

    def close(self) -> None:
        self.sql.dispose()


def start_workers(n: int, env: dict, concurrency: int, engine: Engine, log_dir: Path) -> list[subprocess.Popen]:
    before = engine.workers()
    procs = [subprocess.Popen([WATTLINE, "worker", "--concurrency", str(concurrency)], env=env,
                              stdout=subprocess.DEVNULL, stderr=open(log_dir / f"worker{n}-{i}.log", "w"))
             for i in range(n)]
    end = time.monotonic() + 60
    while engine.workers() < before + n and time.monotonic() < end:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"a worker exited at start; see {log_dir}")
        time.sleep(0.2)
    return procs


def stop_workers(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()  # procrastinate finishes the jobs it holds
    for p in procs:
        try:
            p.wait(90)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


# -- phases -------------------------------------------------------------------------------

def poll_window(ctx, minutes: int, groups: dict, dbs: list[str], ticker=None) -> dict:
    """Meter ``minutes`` whole minutes after one tick at the next minute boundary (the
    warm-up: logins, and the workers' own tick at their start); ``ticker(b, n)`` runs
    in-process ticks at ``n`` boundaries from ``b`` (None: the workers' periodic task)."""
    b0 = next_minute() + 60
    if ticker is not None:
        ticker(b0 - 60, minutes + 1)
    sleep_until(b0 - 0.5)
    meter = CpuMeter(groups, dbs).start()
    sleep_until(b0 + 60 * minutes)
    m = meter.stop()
    per_minute = [_polls_finished(ctx, b0 + 60 * k, b0 + 60 * (k + 1)) for k in range(minutes)]
    m.update(polls=[p for p, _ in per_minute], ok=[o for _, o in per_minute],
             polls_per_min=statistics.mean(p for p, _ in per_minute),
             ok_per_min=statistics.mean(o for _, o in per_minute))
    return m


def set_polling(ctx, paused: bool) -> None:
    """Paused: every system's last poll in the future, so no tick finds one due (the
    backfills are then timed alone); resumed: none polled yet, all due at once."""
    with ctx.dbs.telemetry.begin() as c:
        c.execute(text("UPDATE system_poll_state SET last_poll_ms = :t"),
                  {"t": int(time.time() * 1000) + 10 ** 9 if paused else None})


def in_process_ticks(ctx, stragglers_s: float):
    """The baseline's ticker: one Poller, ``start_due`` at every boundary (as ``wattline
    poll``), in a thread running its own event loop."""
    from wattline.jobs.poll import Poller

    def ticker(b0: float, minutes: int) -> None:
        async def run():
            poller = Poller(ctx)
            tasks: set[asyncio.Task] = set()
            try:
                for k in range(minutes):
                    await asyncio.sleep(max(0.0, b0 + 60 * k - time.time()))
                    started, _ = await poller.start_due(cause="CRON")
                    tasks.update(started)
                await asyncio.sleep(max(0.0, b0 + 60 * minutes - time.time()))
                pending = [t for t in tasks if not t.done()]
                if pending:
                    await asyncio.wait(pending, timeout=stragglers_s)
            finally:
                await poller.aclose()
        box["thread"] = threading.Thread(target=lambda: asyncio.run(run()), daemon=True)
        box["thread"].start()

    box: dict = {}
    return ticker, box


def backfill_engine(ctx, engine: Engine, plant_ids: list[int], groups: dict, dbs: list[str]) -> dict:
    set_polling(ctx, paused=True)
    try:  # the minute's poll tick: done before the backfills start, if it ends in time
        engine.wait_idle(timeout=120)
        overlap = 0
    except RuntimeError:  # ticks that outlast their minute pile up (worker slots): said in the report
        overlap = engine.statuses().get("doing", 0)
    meter = CpuMeter(groups, dbs).start()
    t0 = time.time()
    job_ids = engine.defer_backfills(plant_ids)
    t1 = engine.wait_idle(job_ids, timeout=1800)
    m = meter.stop()
    m.update(seconds=t1 - t0, readings=_readings(ctx, plant_ids), jobs=engine.statuses(job_ids),
             polls_meanwhile=_polls_finished(ctx, t0, t1)[0], ticks_running=overlap)
    return m


def backfill_in_process(ctx, plant_ids: list[int], concurrency: int, groups: dict, dbs: list[str]) -> dict:
    from wattline.jobs.backfill import backfill_plant

    async def run():
        sem = asyncio.Semaphore(concurrency)

        async def one(pid):
            async with sem:
                return await backfill_plant(ctx, pid)
        return await asyncio.gather(*(one(p) for p in plant_ids))

    meter = CpuMeter(groups, dbs).start()
    t0 = time.time()
    results = asyncio.run(run())
    t1 = time.time()
    m = meter.stop()
    ok = sum(1 for r in results if r.success)
    m.update(seconds=t1 - t0, readings=_readings(ctx, plant_ids), jobs={"succeeded": ok, "failed": len(results) - ok},
             polls_meanwhile=0, ticks_running=0)
    return m


# -- report -------------------------------------------------------------------------------

def pct(m: dict, name: str) -> float:
    return 100 * m["cpu"].get(name, 0.0) / m["wall"]


def verdict(m: dict, ours: list[str]) -> str:
    """Where it stops: one of our processes on its core, our processes on the machine's
    cores, the other sessions' load, or nothing (waiting on latency or the minute)."""
    cores = os.cpu_count() or 1
    busy = 100 * m["machine"] / m["wall"]
    groups = ours + ["postgres (these databases)"]
    top = sorted(((pct(m, g), g) for g in groups), reverse=True)
    mine = sum(pct(m, g) for g in groups)
    head = ", ".join(f"{g} {p:.0f}%" for p, g in top[:3])
    if top[0][0] >= 85:
        where = f"core-bound: {top[0][1]} at {top[0][0]:.0f}% of its core"
    elif mine >= 85 * cores:
        where = f"CPU-bound: ours use {mine:.0f}% of {cores * 100}%"
    elif busy >= 90 * cores:
        where = f"CPU-starved: the machine is full ({busy:.0f}%), ours {mine:.0f}%"
    else:
        where = f"not CPU-bound (ours {mine:.0f}%, machine {busy:.0f}% of {cores * 100}%): waiting"
    return f"{where}; busiest: {head}; other sessions {max(0.0, busy - mine):.0f}%"


def print_table(rows: list[tuple[str, dict, dict, list[str]]], a) -> None:
    print()
    print(f"{a.systems} systems ({', '.join(POLL_VENDORS)}), {a.latency_s:g} s per vendor call; "
          f"{a.plants} backfills of {a.backfill_days} days (Solarman, 15-min records, 3 points); "
          f"worker --concurrency {a.concurrency}; {os.cpu_count()} cores. CPU in % of one core.")
    head = (f"{'run':<16} {'polls/min':>10} {'ok/min':>7} {'backfill rd/s':>14} {'workers CPU% (poll | backfill)':<34} "
            f"{'PG poll|bf':>11} {'emul poll|bf':>13} {'machine poll|bf':>16} {'load':>5}")
    print(head)
    print("-" * len(head))
    for label, p, b, workers in rows:
        wcpu = " ".join(f"{pct(p, w):.0f}|{pct(b, w):.0f}" for w in workers)
        rd = b["readings"] / b["seconds"]
        print(f"{label:<16} {p['polls_per_min']:>10.0f} {p['ok_per_min']:>7.0f} {rd:>14,.0f} {wcpu:<34} "
              f"{pct(p, 'postgres (these databases)'):>5.0f}|{pct(b, 'postgres (these databases)'):<5.0f} "
              f"{pct(p, 'emulation (poll)') + pct(p, 'emulation (backfill)'):>6.0f}|"
              f"{pct(b, 'emulation (poll)') + pct(b, 'emulation (backfill)'):<6.0f} "
              f"{100 * p['machine'] / p['wall']:>8.0f}|{100 * b['machine'] / b['wall']:<7.0f} "
              f"{max(p['load'], b['load']):>5.1f}")
    print()
    for label, p, b, workers in rows:
        ours = workers + ["emulation (poll)", "emulation (backfill)"]
        emu_p = p["cpu"].get("emulation (poll)", 0.0)
        emu_b = b["cpu"].get("emulation (backfill)", 0.0)
        tot_p = sum(p["cpu"].get(g, 0.0) for g in ours + ["postgres (these databases)"])
        tot_b = sum(b["cpu"].get(g, 0.0) for g in ours + ["postgres (these databases)"])
        cpu_poll = sum(p["cpu"].get(w, 0.0) for w in workers) / max(1, sum(p["polls"]))
        print(f"{label}: polls per minute {p['polls']} (ok {p['ok']}); {1000 * cpu_poll:.1f} ms "
              f"{'worker' if label != 'in-process' else 'process'} CPU per poll finished; "
              f"emulation {100 * emu_p / max(1e-9, tot_p):.0f}% of this run's CPU while polling")
        print(f"  polling: {verdict(p, ours)}")
        print(f"  backfill: {b['readings']:,} readings in {b['seconds']:.1f} s, jobs {b['jobs']}, "
              f"{b['polls_meanwhile']} polls finished meanwhile ({b['ticks_running']} poll ticks still running at the start); emulation {100 * emu_b / max(1e-9, tot_b):.0f}% "
              f"of this run's CPU; {verdict(b, ours)}")


# -- main ---------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--systems", type=int, default=1000)
    ap.add_argument("--workers", default="1,2,3")
    ap.add_argument("--concurrency", type=int, default=4, help="wattline worker --concurrency")
    ap.add_argument("--minutes", type=int, default=2, help="whole minutes of polling measured per run")
    ap.add_argument("--latency-s", type=float, default=1.0)
    ap.add_argument("--plants", type=int, default=6, help="backfills per run (different plants)")
    ap.add_argument("--backfill-days", type=int, default=365)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--no-baseline", action="store_true")
    a = ap.parse_args()
    counts = [int(x) for x in a.workers.split(",")]

    from wattline import logs
    from wattline.config import Settings
    from wattline.context import open_context

    logs.configure("ERROR")
    tmp = Path(tempfile.mkdtemp(prefix="wl-workers-"))
    names = bench_backfill.create_pg_databases(3)
    base = bench_backfill.PG_ADMIN.rsplit("/", 1)[0]
    main_url, tel_url, queue_url = (f"{base}/{n}" for n in names)
    secret = base64.b64encode(os.urandom(32)).decode()
    namespace = f"benchworkers{os.getpid()}:"
    settings = Settings(data_dir=tmp, main_url=main_url, telemetry_url=tel_url, secret_key=secret,
                        redis_url=a.redis, redis_namespace=namespace)
    env = dict(os.environ, WATTLINE_JOBS_URL=queue_url, WATTLINE_MAIN_URL=main_url, WATTLINE_TELEMETRY_URL=tel_url,
               WATTLINE_SECRET_KEY=secret, WATTLINE_DATA_DIR=str(tmp), WATTLINE_REDIS_URL=a.redis,
               WATTLINE_REDIS_NAMESPACE=namespace, WATTLINE_LOG_LEVEL="ERROR")
    poll_clouds, urls = bench_poll.start_clouds(1, a.latency_s * 1000)
    bf_port = bench_backfill.free_port()
    bf_cloud = bench_backfill.start_cloud(bf_port, "clear_sky")
    bf_url = f"http://127.0.0.1:{bf_port}"
    ctx = open_context(settings)
    engine = Engine(queue_url)
    rows = []
    try:
        t = time.perf_counter()
        bench_poll.setup(ctx, a.systems, 1, urls, vendors=POLL_VENDORS)
        engine.apply_schema()
        print(f"setup: {a.systems} systems in {time.perf_counter() - t:.1f} s; databases {', '.join(names)}; "
              f"load {os.getloadavg()[0]:.1f}", flush=True)
        clouds = {"emulation (poll)": [p.pid for p in poll_clouds], "emulation (backfill)": [bf_cloud.pid]}
        if not a.no_baseline:
            groups = dict(clouds, **{"this process": [os.getpid()]})
            ticker, box = in_process_ticks(ctx, stragglers_s=60)
            print("in-process polling ...", flush=True)
            p = poll_window(ctx, a.minutes, groups, names, ticker)
            box["thread"].join()
            plants = add_backfill_plants(ctx, bf_url, a.plants, a.backfill_days, "base")
            print("in-process backfills ...", flush=True)
            b = backfill_in_process(ctx, plants, a.concurrency, groups, names)
            rows.append(("in-process", p, b, ["this process"]))
            print_table(rows, a)
        for run, n in enumerate(counts):  # a count may repeat (a warm-up run first)
            set_polling(ctx, paused=False)
            procs = start_workers(n, env, a.concurrency, engine, tmp)
            try:
                workers = {f"worker {i + 1}": [pr.pid] for i, pr in enumerate(procs)}
                groups = dict(clouds, **workers)
                print(f"{n} worker(s): polling ...", flush=True)
                p = poll_window(ctx, a.minutes, groups, names)
                plants = add_backfill_plants(ctx, bf_url, a.plants, a.backfill_days, f"w{n}r{run}")
                print(f"{n} worker(s): backfills ...", flush=True)
                b = backfill_engine(ctx, engine, plants, groups, names)
            finally:
                stop_workers(procs)
            rows.append((f"{n} worker(s)", p, b, list(workers)))
            print_table(rows, a)
    finally:
        ctx.close()
        engine.close()
        for proc in [*poll_clouds, bf_cloud]:
            proc.terminate()
            proc.wait(10)
        bench_backfill.drop(names)
        drop_redis_namespace(a.redis, namespace)
        shutil.rmtree(tmp, ignore_errors=True)


def drop_redis_namespace(url: str, namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=namespace + "*", count=1000))
    for k in range(0, len(keys), 1000):
        client.delete(*keys[k:k + 1000])
    client.close()


if __name__ == "__main__":
    main()

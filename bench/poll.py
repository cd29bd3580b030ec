"""Minute polling at scale (issue 11): many emulated systems of the six vendors, every
vendor call taking ``--latency-s``, polled by the real :class:`~wattline.jobs.poll.Poller`.

    PYTHONPATH=src .venv/bin/python bench/poll.py [--systems 10000] [--minutes 3] [--latency-s 1]
        [--db sqlite|postgres] [--concurrency 3000] [--cloud-procs 1] [--redis URL] [--loop uvloop|asyncio]
        [--warmup]

* The emulated clouds run in their own process(es) (uvicorn, ``bench_mode``: vendor
  quotas lifted, see ``vendor_cloud/config.py``), so their CPU is not the poller's.
* Systems: selectronic, enphase, fronius (local API), amber, solaredge, mondo in
  turn; ``--per-account`` systems per Enphase or Amber account, one per account for
  the others (see SHARED_ACCOUNTS); each account unlimited on Wattline's side too
  (``rate_limits`` lifted) since the emulation lifts the vendors' quotas.
* Every minute a tick starts every system (``force``: the bench asks all of them
  each minute, whatever their vendor's own interval), spread over the minute as the
  scheduler's ticks are (``--no-spread``: all at the tick); an overrunning system is
  skipped, as in production.
* Freshness: for a sample of polls, the time from the adapter holding the vendor's
  answer to the value being readable through ``ctx.latest_values.read`` (the read
  path of ``GET /api/data/latest``; probed every 10 ms for half a second, then every
  100 ms, in threads of its own).
* ``--warmup``: one untimed tick of every system, waited for, before the timed
  minutes (printed apart): the first minute then no longer holds the logins, token
  grants and the emulation's first simulation of each site.
* Baseline: bare GETs of one vendor endpoint per system through the poller's own HTTP
  client, once on each transport (httpx over aiohttp, the default; httpx's own, as
  ``WATTLINE_VENDOR_HTTP=httpx`` runs the poller), at the same concurrency, no
  pipeline, same process, after the polling.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

VENDORS = ("selectronic", "enphase", "fronius", "amber", "solaredge", "mondo")
# vendors whose accounts hold many systems here (an Enphase partner app, an Amber key);
# SolarEdge (a key per site, 3 calls at once), Selectronic and Mondo (a homeowner's
# login) and Fronius (a device on the LAN) have one system per account, as in real life
SHARED_ACCOUNTS = ("enphase", "amber")
UNLIMITED = {"calls_per_minute": None, "calls_per_day": None, "calls_per_month": None}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_clouds(n: int, latency_ms: float) -> tuple[list[subprocess.Popen], list[str]]:
    """``n`` emulation processes (bench mode, the given latency, the wall clock)."""
    procs, urls = [], []
    env = dict(os.environ, WATTLINE_EMULATOR_BENCH="1", WATTLINE_EMULATOR_LATENCY_MS=str(latency_ms))
    for _ in range(n):
        port = free_port()
        code = ("from wattline.simulator.vendor_cloud.server import serve; "
                "from wattline.simulator.vendor_cloud.config import CloudConfig; "
                f"serve(port={port}, log_level='error', config=CloudConfig(history_source='clear_sky', "
                "warm_plants=False))")
        procs.append(subprocess.Popen([sys.executable, "-c", code], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        urls.append(f"http://127.0.0.1:{port}")
    for url in urls:
        for _ in range(400):
            try:
                health = httpx.get(url + "/_emulator/health", timeout=0.5).json()
                assert health["benchMode"] and health["latencyMs"] == latency_ms, health
                break
            except (httpx.HTTPError, ValueError):
                time.sleep(0.05)
        else:
            for p in procs:
                p.terminate()
            raise RuntimeError("emulated cloud did not start")
    return procs, urls


async def enphase_refresh_tokens(base_urls: list[str]) -> list[str]:
    """The OAuth code flow against the emulation, for all accounts at once: a refresh
    token per account (each call waits the emulation's latency)."""
    from wattline.simulator.vendor_cloud import enphase as emu

    async with httpx.AsyncClient(timeout=60) as client:
        async def one(base_url: str) -> str:
            r = await client.get(base_url + "/oauth/authorize", params={
                "response_type": "code", "client_id": emu.DEMO_CLIENT_ID, "redirect_uri": "http://127.0.0.1/cb"})
            code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
            tok = await client.post(base_url + "/oauth/token", auth=(emu.DEMO_CLIENT_ID, emu.DEMO_CLIENT_SECRET),
                                    data={"grant_type": "authorization_code", "code": code,
                                          "redirect_uri": "http://127.0.0.1/cb"})
            return tok.json()["refresh_token"]
        return list(await asyncio.gather(*(one(u) for u in base_urls)))


def credentials(vendor: str, base_url: str, tokens: list[str]) -> dict:
    from wattline.simulator.vendor_cloud import amber, enphase, mondo, selectronic, solaredge

    return {"selectronic": lambda: dict(selectronic.DEFAULT_CREDENTIALS),
            "enphase": lambda: {"client_id": enphase.DEMO_CLIENT_ID, "client_secret": enphase.DEMO_CLIENT_SECRET,
                                "api_key": enphase.DEMO_API_KEY, "refresh_token": tokens.pop()},
            "fronius": lambda: {},
            "amber": lambda: {"api_key": amber.DEMO_API_KEY},
            "solaredge": lambda: {"api_key": solaredge.DEFAULT_API_KEY},
            "mondo": lambda: dict(mondo.DEFAULT_CREDENTIALS)}[vendor]()


def site_id(vendor: str, i: int) -> str:
    return {"mondo": f"grp-{i}", "amber": f"01BENCH{i:019d}", "fronius": f"fronius-{i}"}.get(vendor, str(5_000_000 + i))


def setup(ctx, n: int, per_account: int, urls: list[str], vendors: tuple[str, ...] = VENDORS) -> dict:
    """``n`` systems in turn of ``vendors`` (default the six); one owner per account.
    Returns figures."""
    from wattline import system_admin
    from wattline.security import passwords
    from wattline.store import systems_repo, users_repo

    by_vendor = {v: [i for i in range(n) if vendors[i % len(vendors)] == v] for v in vendors}
    # the accounts in order, each on one emulation process (its state, tokens included, is its own)
    plan = []
    for v, idx in by_vendor.items():
        size = per_account if v in SHARED_ACCOUNTS else 1
        for k in range(0, len(idx), size):
            plan.append((v, k // size, idx[k:k + size], urls[len(plan) % len(urls)]))
    t = time.perf_counter()
    enphase_urls = [url for v, _, _, url in plan if v == "enphase"]
    # a refresh token per Enphase account, granted by the process that account calls;
    # reversed: credentials() pops them from the end, one per account in plan order
    tokens = asyncio.run(enphase_refresh_tokens(enphase_urls))[::-1]
    grants_s = time.perf_counter() - t
    t0 = time.perf_counter()
    pw_hash = passwords.hash_password("a long bench password")
    with ctx.dbs.main.begin() as conn:
        for v, k, group, url in plan:
            owner = f"{v}{k}"
            users_repo.insert_user(conn, owner, pw_hash, "user", None)  # one hash for all: the bench's owners
            account_id = None
            for i in group:
                base = {"fronius": f"{url}/sites/{site_id(v, i)}", "amber": f"{url}/v1"}.get(v, url)
                kw = ({"account_id": account_id} if account_id else
                      {"credentials": credentials(v, url, tokens), "rate_limits": UNLIMITED, "base_url": base})
                sid = system_admin.add_system(conn, ctx.settings, f"{v} {i}", v, site_id(v, i), owner,
                                              alias=f"s{i}", **kw)
                if account_id is None:
                    account_id = systems_repo.system(conn, sid)["vendor_account_id"]
    accounts = len(plan)
    enphase_accounts = len(enphase_urls)
    return {"setup_s": time.perf_counter() - t0, "accounts": accounts, "grants_s": grants_s,
            "enphase_accounts": enphase_accounts}


def open_ctx(db: str, tmp: str, redis_url: str | None):
    from wattline.config import Settings
    from wattline.context import open_context

    kw = {}
    if db == "postgres":
        from sqlalchemy import create_engine, text

        admin_url = os.environ.get("WATTLINE_TEST_PG", "postgresql+psycopg://root@127.0.0.1:5432/test")
        base = admin_url.rsplit("/", 1)[0]
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        names = [f"bench_poll_{os.getpid()}_main", f"bench_poll_{os.getpid()}_tel"]
        with admin.connect() as c:
            for name in names:
                c.execute(text(f"DROP DATABASE IF EXISTS {name}"))
                c.execute(text(f"CREATE DATABASE {name}"))
        admin.dispose()
        kw = {"main_url": f"{base}/{names[0]}", "telemetry_url": f"{base}/{names[1]}"}
    if redis_url:
        kw["redis_url"] = redis_url
        kw["redis_namespace"] = f"benchpoll{os.getpid()}:"
    return open_context(Settings(data_dir=Path(tmp), secret_key=base64.b64encode(b"p" * 32).decode(), **kw))


class Probe:
    """Freshness of a sample of polls: adapter answer -> readable via latest_values.read."""

    def __init__(self, ctx, systems, rate: float) -> None:
        self.ctx, self.rate = ctx, rate
        self.series = {s.plant_id: list(s.series.values()) for s in systems}
        self.pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="probe")
        self.lags_ms: list[float] = []
        self.lost = 0
        self.cpu_s = 0.0  # CPU of the probe threads' reads (subtracted from the poller's)
        self.tasks: set[asyncio.Task] = set()
        self.rng = random.Random(7)
        self.on = True  # off during the warm-up

    def answered(self, system_id: int, fetched) -> None:
        if not self.on or not fetched.records or self.rng.random() >= self.rate:
            return
        ts = max(r.ts for r in fetched.records)
        t = asyncio.create_task(self._watch(system_id, ts, time.perf_counter()))
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    def _visible(self, system_id: int, ts: int) -> bool:
        t = time.thread_time()
        try:
            got = self.ctx.latest_values.read(system_id, self.series[system_id])
            return any(v.ts >= ts for v in got.values())
        finally:  # the bench's own reads: not the poller's CPU
            self.cpu_s += time.thread_time() - t

    async def _watch(self, system_id: int, ts: int, t0: float) -> None:
        loop = asyncio.get_running_loop()
        tries = 0
        while time.perf_counter() - t0 < 60:
            if await loop.run_in_executor(self.pool, self._visible, system_id, ts):
                self.lags_ms.append(1000 * (time.perf_counter() - t0))
                return
            tries += 1
            # every 10 ms for the first half second, then every 100 ms: a probe reading
            # every 10 ms for up to a minute took ~45 % of a core (and the GIL) at 10,000 systems
            await asyncio.sleep(0.01 if tries < 50 else 0.1)
        self.lost += 1


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def machine_cpu() -> dict[str, float]:
    """CPU seconds so far: the whole machine's busy time (all cores, /proc/stat) and
    that of the PostgreSQL and Redis server processes (by name; a process that ended
    meanwhile is not counted), to tell a full machine from a slow poller."""
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    out = {"machine": (sum(fields) - fields[3] - fields[4]) / tick, "postgres": 0.0, "redis-server": 0.0}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                text = f.read()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        key = "postgres" if name.startswith("postgres") else name
        if key in out and key != "machine":
            parts = text[text.rindex(")") + 2:].split()
            out[key] += (int(parts[11]) + int(parts[12])) / tick
    return out


async def run_polling(ctx, a, systems) -> dict:
    from wattline.jobs.poll import Poller

    probe = Probe(ctx, systems, a.sample)

    class TimedPoller(Poller):
        def _adapter(self, s):
            adapter = super()._adapter(s)
            return _Timed(adapter, s.plant_id, probe)

    poller = TimedPoller(ctx, concurrency=a.concurrency, timeout_s=a.timeout_s, writer_batch=a.writer_batch,
                         writer_slots=a.writer_slots, spread_s=a.spread_s)
    warmup = None
    if a.warmup:
        warmup = await warm_up(poller, probe, a)
    done_at: list[tuple[float, bool]] = []
    failures: list[tuple[str, str]] = []
    overruns, tick_s = 0, []
    t_start = time.perf_counter()
    cpu0 = time.process_time()
    cpu_marks, probe_marks, machine_marks = [], [], []
    pending: set[asyncio.Task] = set()
    try:
        for minute in range(a.minutes):
            target = t_start + 60 * minute
            await asyncio.sleep(max(0.0, target - time.perf_counter()))
            cpu_marks.append((time.perf_counter(), time.process_time(), len(done_at)))
            machine_marks.append(machine_cpu())
            probe_marks.append(probe.cpu_s)
            t0 = time.perf_counter()
            tasks, report = await poller.start_due(force=True, spread=a.spread)
            tick_s.append(time.perf_counter() - t0)
            overruns += len(report.skipped_running)
            def finished(t, m=minute):
                nonlocal overruns
                if t.cancelled() or t.exception() is not None:
                    return
                o = t.result()
                if o.skipped:  # a spread poll whose previous poll still ran at its place
                    overruns += 1
                    return
                done_at.append((time.perf_counter(), o.success))
                if not o.success:
                    failures.append((m + 1, o.vendor_type, (o.error or "")[:60]))

            for t in tasks:
                t.add_done_callback(finished)
                pending.add(t)
                t.add_done_callback(pending.discard)
            print(f"  minute {minute + 1}: started {len(tasks)} polls in {tick_s[-1]:.2f} s, "
                  f"{len(report.skipped_running)} still running (skipped); "
                  f"{len(done_at)} polls done so far; load {os.getloadavg()[0]:.1f}", flush=True)
        await asyncio.sleep(max(0.0, t_start + 60 * a.minutes - time.perf_counter()))
        t_end, cpu_end, n_end = time.perf_counter(), time.process_time(), len(done_at)
        machine_end = machine_cpu()
        probe_end = probe.cpu_s
        if pending:  # the last minute's stragglers, for the session count
            await asyncio.wait(set(pending), timeout=a.timeout_s + 30)
        if probe.tasks:
            await asyncio.wait(set(probe.tasks), timeout=10)
        print(f"  polling done ({len(pending)} polls still running, {len(probe.tasks)} probes)", flush=True)
    finally:
        await poller.aclose()
        probe.pool.shutdown(wait=False, cancel_futures=True)
    per_minute = [sum(1 for t, _ in done_at if t_start + 60 * m <= t < t_start + 60 * (m + 1))
                  for m in range(a.minutes)]
    ok = sum(1 for _, s in done_at if s)
    ok_per_minute = [sum(1 for t, s in done_at if s and t_start + 60 * m <= t < t_start + 60 * (m + 1))
                     for m in range(a.minutes)]
    # sustained: minutes after the first (the first holds the logins / token grants)
    steady = per_minute[1:] or per_minute
    t1, c1, n1 = cpu_marks[1] if len(cpu_marks) > 1 else cpu_marks[0]
    return {"warmup": warmup, "per_minute": per_minute, "ok_per_minute": ok_per_minute,
            "sustained_ok": statistics.mean(ok_per_minute[1:] or ok_per_minute), "sustained": statistics.mean(steady), "ok": ok, "polls": len(done_at),
            "overruns": overruns, "failures": failures, "tick_s": tick_s, "lags": probe.lags_ms, "lost": probe.lost,
            "cpu_total": cpu_end - cpu0, "cpu_steady": cpu_end - c1 - (probe_end - probe_marks[min(1, len(probe_marks) - 1)]),
            "probe_cpu_steady": probe_end - probe_marks[min(1, len(probe_marks) - 1)], "polls_steady": n_end - n1,
            "wall": t_end - t_start, "writer": dict(poller._writer.stats),
            "machine": {k: machine_end[k] - machine_marks[min(1, len(machine_marks) - 1)][k] for k in machine_end},
            "machine_wall": t_end - cpu_marks[min(1, len(cpu_marks) - 1)][0]}


async def warm_up(poller, probe: Probe, a) -> dict:
    """One untimed tick of every system before the timed minutes (``--warmup``), waited
    for: the logins and token grants, the accounts' adapters, and the emulation's first
    touch of every site (its simulated history from the site's start) happen here, not
    in the measured minutes. Not a poll rate: printed apart."""
    probe.on = False
    t0, cpu0 = time.perf_counter(), time.process_time()
    tasks, _report = await poller.start_due(force=True)
    done, late = await asyncio.wait(tasks, timeout=a.timeout_s * 4 + 60) if tasks else (set(), set())
    import collections

    results = [t.result() for t in done if not t.cancelled() and t.exception() is None]
    ok = sum(1 for r in results if r.success)
    why = collections.Counter((r.vendor_type, (r.error or "")[:60]) for r in results if not r.success)
    out = {"polls": len(tasks), "ok": ok, "late": len(late), "wall": time.perf_counter() - t0,
           "cpu": time.process_time() - cpu0}
    print(f"  warm-up (untimed, not counted): one tick of all {len(tasks)} systems: {ok} succeeded, "
          f"{len(late)} still running, in {out['wall']:.1f} s ({out['cpu']:.1f} s poller CPU)"
          + ("; failed: " + "; ".join(f"{n}x {v}: {e}" for (v, e), n in why.most_common(6)) if why else ""),
          flush=True)
    probe.on = True
    return out


class _Timed:
    """An adapter whose ``fetch_latest`` tells the probe when the answer arrived."""

    def __init__(self, adapter, system_id: int, probe: Probe) -> None:
        self._adapter, self._sid, self._probe = adapter, system_id, probe

    async def fetch_latest(self, *args, **kw):
        got = await self._adapter.fetch_latest(*args, **kw)
        self._probe.answered(self._sid, got)
        return got

    def __getattr__(self, name):
        return getattr(self._adapter, name)


async def baseline(urls: list[str], n: int, concurrency: int, transport: str) -> dict:
    """Bare GETs through the poller's HTTP client: one GET per system (the bench's Fronius sites' power flow, no auth) at the same
    concurrency, through pools of 32 connections (as the poller's per-account pools:
    one httpx pool of thousands of connections costs far more CPU per request)."""
    sem = asyncio.Semaphore(concurrency)
    fronius = [site_id("fronius", i) for i in range(n) if VENDORS[i % len(VENDORS)] == "fronius"]  # warm sites
    from wattline.sources.vendors.http import tls_context
    from wattline.sources.vendors.transport import vendor_http_client

    # the poller's own HTTP client: httpx over aiohttp (its default), or httpx's own transport
    clients = [vendor_http_client(timeout=httpx.Timeout(60), ssl_context=tls_context(), max_connections=32,
                                  transport=transport)
               for _ in range(max(1, -(-concurrency // 32)))]
    try:
        async def one(i: int) -> bool:
            async with sem:
                try:
                    r = await clients[i % len(clients)].get(
                        f"{urls[i % len(urls)]}/sites/{fronius[i % len(fronius)]}/solar_api/v1/"
                        "GetPowerFlowRealtimeData.fcgi")
                    r.json()
                except httpx.HTTPError:  # counted as not ok (the emulation dropped it)
                    return False
                return r.status_code == 200
        cpu0, t0 = time.process_time(), time.perf_counter()
        got = await asyncio.gather(*(one(i) for i in range(n)))
        return {"calls": n, "ok": sum(got), "wall": time.perf_counter() - t0, "cpu": time.process_time() - cpu0}
    finally:
        for c in clients:
            await c.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--systems", type=int, default=10_000)
    ap.add_argument("--minutes", type=int, default=3)
    ap.add_argument("--latency-s", type=float, default=1.0)
    ap.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--redis", default=None, help="latest values in this Redis (default: the database answers)")
    ap.add_argument("--concurrency", type=int, default=3000)
    ap.add_argument("--timeout-s", type=float, default=30.0)
    ap.add_argument("--per-account", type=int, default=25, help="systems per vendor account (not Fronius)")
    ap.add_argument("--cloud-procs", type=int, default=1)
    ap.add_argument("--writer-batch", type=int, default=None,
                    help="the poll writer's most polls a batch (default: the Poller's, by database)")
    ap.add_argument("--writer-slots", type=int, default=None,
                    help="the poll writer's batches at once (default: the Poller's, by database)")
    ap.add_argument("--sample", type=float, default=0.02, help="share of polls whose freshness is probed")
    ap.add_argument("--spread", action=argparse.BooleanOptionalAction, default=True,
                    help="spread each minute's polls over the minute, as the scheduler's ticks do "
                         "(--no-spread: all at the tick)")
    ap.add_argument("--spread-s", type=float, default=None,
                    help="the spread window (default: the Poller's, the minute less a margin: 50 s)")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=False,
                    help="one untimed tick of every system, waited for, before the timed minutes (logins, "
                         "token grants and the emulation's first touch of each site out of the figures)")
    ap.add_argument("--switch-interval-ms", type=float, default=None,
                    help="the poller process's GIL switch interval (sys.setswitchinterval; Python's default 5 ms)")
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                    help="the poller's event loop (uvloop: as `wattline poll` / `wattline worker` run it)")
    a = ap.parse_args()
    if a.switch_interval_ms is not None:
        sys.setswitchinterval(a.switch_interval_ms / 1000)

    from wattline import logs
    from wattline.store import systems_repo

    logs.configure("ERROR")
    procs, urls = start_clouds(a.cloud_procs, a.latency_s * 1000)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ctx = open_ctx(a.db, tmp, a.redis)
            try:
                fig = setup(ctx, a.systems, a.per_account, urls)
                systems = systems_repo.pollable_systems(ctx.dbs.main_reader)
                print(f"setup: {len(systems)} systems ({', '.join(VENDORS)} in turn), {fig['accounts']} vendor "
                      f"accounts ({a.per_account} systems each for {'/'.join(SHARED_ACCOUNTS)}, one for the others), created in {fig['setup_s']:.1f} s "
                      f"({1000 * fig['setup_s'] / max(1, a.systems):.2f} ms per system, one transaction of "
                      f"system_admin.add_system calls; before it {fig['enphase_accounts']} Enphase OAuth code grants "
                      f"at once in {fig['grants_s']:.1f} s); database {a.db}; "
                      f"latest values: {ctx.latest_values.name if hasattr(ctx.latest_values, 'name') else type(ctx.latest_values).__name__}",
                      flush=True)
                print(f"emulation: {a.cloud_procs} uvicorn process(es), bench mode (vendor quotas lifted: Enphase "
                      f"10/min, SolarEdge 300/day and 3 concurrent, Amber 50/5 min; Selectronic outage off), "
                      f"{a.latency_s:g} s per vendor call; poller concurrency {a.concurrency}, "
                      f"{os.cpu_count()} cores; poller event loop {a.loop}, GIL switch interval {sys.getswitchinterval() * 1000:g} ms; "
                      + (f"each minute's polls spread over {a.spread_s if a.spread_s is not None else 50:g} s"
                         if a.spread else "each minute's polls all at the tick (--no-spread)"), flush=True)
                from wattline import aio
                run = aio.run if a.loop == "uvloop" else asyncio.run
                r = run(run_polling(ctx, a, systems))
                with ctx.dbs.telemetry.connect() as conn:
                    from sqlalchemy import func, select

                    from wattline.store.tables import poll_sessions
                    sessions = conn.execute(select(func.count()).select_from(poll_sessions)).scalar()
            finally:
                ctx.close()
        cloud_cpu = []
        for p in procs:
            try:
                with open(f"/proc/{p.pid}/stat") as f:
                    parts = f.read().split(")")[1].split()
                cloud_cpu.append((int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK"))
            except OSError:
                pass
        report(a, r, sessions, cloud_cpu)
        if not a.no_baseline:
            from wattline.sources.vendors.transport import transport_name

            cpu_poll_ms = 1000 * r["cpu_steady"] / max(1, r["polls_steady"])
            print(f"baseline ... (the poller ran on the {transport_name()} transport)", flush=True)
            for transport in ("aiohttp", "httpx"):
                base = run(baseline(urls, a.systems, a.concurrency, transport))
                per_call = 1000 * base["cpu"] / base["calls"]
                print(f"baseline, bare GETs through the vendor HTTP client on the {transport} transport (one GET "
                      f"per system, concurrency {a.concurrency}, pools of 32, no pipeline): {base['ok']}/"
                      f"{base['calls']} ok in {base['wall']:.1f} s, {per_call:.2f} ms CPU per call; poll / "
                      f"baseline CPU ratio {cpu_poll_ms / per_call:.1f}x", flush=True)
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def report(a, r: dict, sessions: int, cloud_cpu: list[float]) -> None:
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lags = r["lags"]
    cpu_poll_ms = 1000 * r["cpu_steady"] / max(1, r["polls_steady"])
    first = ("after an untimed warm-up tick" if r.get("warmup") else
             "minute 1 includes logins, token grants and the emulation's first touch of every site")
    print(f"polls finished per minute: {r['per_minute']}, of them succeeded: {r['ok_per_minute']} "
          f"({first}); load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    print(f"sustained (minutes 2+): {r['sustained_ok']:.0f} systems polled successfully per minute of {a.systems} "
          f"({100 * r['sustained_ok'] / a.systems:.0f}% of the target; {r['sustained']:.0f} polls finished a minute); {r['ok']} of {r['polls']} polls succeeded, "
          f"{r['overruns']} overruns skipped, {sessions} sessions written; tick start {max(r['tick_s']):.2f} s at most")
    if r["failures"]:
        import collections

        top = collections.Counter(r["failures"]).most_common(10)
        print("failures (tick, vendor, error): " + "; ".join(f"{n}x tick {m} {v}: {e}" for (m, v, e), n in top),
              flush=True)
    w = r.get("writer") or {}
    if w.get("batches"):
        print(f"writer: {w['polls']} polls in {w['batches']} batches ({w['polls'] / w['batches']:.0f} a batch), "
              f"{1000 * w['write_s'] / w['batches']:.0f} ms a batch, {1000 * w['write_s'] / w['polls']:.1f} ms a poll "
              f"({w['write_s']:.0f} s writing in {r['wall']:.0f} s, warm-up included)", flush=True)
    print(f"answer -> readable via latest_values.read: p50 {pct(lags, 0.5):.0f} ms, p95 {pct(lags, 0.95):.0f} ms, "
          f"max {max(lags) if lags else float('nan'):.0f} ms ({len(lags)} sampled polls, {r['lost']} not seen in 60 s)")
    print(f"poller CPU: {cpu_poll_ms:.2f} ms per poll after minute 1 ({r['cpu_steady']:.1f} s CPU for "
          f"{r['polls_steady']} polls = {100 * r['cpu_steady'] / max(1e-9, r['wall'] - 60 * (len(r['per_minute']) > 1)):.0f}% "
          f"of a core; the freshness probe's own reads, {r['probe_cpu_steady']:.1f} s, not counted); emulation CPU {sum(cloud_cpu):.1f} s in total; peak memory (poller process) {peak_mb:.0f} MB",
          flush=True)
    m, wall = r["machine"], r["machine_wall"]
    print(f"machine after minute 1: {m['machine']:.0f} of {wall * (os.cpu_count() or 1):.0f} core-seconds busy "
          f"({100 * m['machine'] / max(1e-9, wall * (os.cpu_count() or 1)):.0f} %); of them PostgreSQL "
          f"{m['postgres']:.0f} s, Redis {m['redis-server']:.0f} s (the poller's and the emulation's above)", flush=True)


if __name__ == "__main__":
    main()

"""One minute-polling tick (jobs/poll.py) of many systems against the emulated clouds.

    .venv/bin/python bench/poll_tick.py [--systems 500] [--accounts 10] [--latency-ms 1000] [--concurrency 256]
        [--backend sqlite|postgres] [--redis URL] [--ticks 1] [--profile FILE]

Half Solarman, half Sungrow, spread over ``--accounts`` vendor accounts (unlimited:
the emulator), SQLite in a temporary directory (or two fresh PostgreSQL databases,
dropped after), the cloud in its own process (its fast clear-sky history, so its CPU
is not charged to the poller) with ``--latency-ms`` on every answer. Each tick is a
fresh :class:`Poller`, as the job engine's ``poll`` task makes one per tick. Prints
each tick's wall time, systems per second, sessions written and this process's CPU
per poll.

``--profile FILE``: cProfile of the ticks only (not the setup), with the work the
poller sends to threads run inline so that the profile sees it (same CPU, less
overlap); read it with ``python -m pstats FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from wattline import clock, system_admin
from wattline.config import Settings
from wattline.context import open_context
from wattline.jobs.poll import Poller
from wattline.security.users import create_user
from wattline.simulator.vendor_cloud.config import DEFAULT_CREDENTIALS
from wattline.store import sessions_repo

NOW = 1763812800  # 2025-11-22T12:00:00Z
UNLIMITED = {"calls_per_minute": None, "calls_per_day": None, "calls_per_month": None}


def start_cloud(latency_ms: float) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = ("from wattline.simulator.vendor_cloud.server import serve; "
            "from wattline.simulator.vendor_cloud.config import CloudConfig; "
            f"serve(port={port}, log_level='warning', config=CloudConfig(clock=lambda: {NOW}, "
            f"latency_ms={latency_ms}, history_source='clear_sky', warm_plants=False))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url + "/", timeout=0.2)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.terminate()
    raise RuntimeError("emulated cloud did not start")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--systems", type=int, default=500)
    ap.add_argument("--accounts", type=int, default=10)
    ap.add_argument("--latency-ms", type=float, default=1000.0)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--redis", default=None, help="latest values in this Redis")
    ap.add_argument("--ticks", type=int, default=1, help="ticks one after the other (the clock moves 60 s)")
    ap.add_argument("--profile", default=None, help="write a cProfile of the ticks to this file")
    a = ap.parse_args()
    clock.set_now(NOW)
    proc, base_url = start_cloud(a.latency_ms)
    try:
        run(a, base_url)
    finally:
        proc.terminate()
        proc.wait(10)
    cloud = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"emulated cloud process CPU (start-up included): {cloud.ru_utime + cloud.ru_stime:.2f} s")


def run(a, base_url: str) -> None:
    from backfill import databases, drop  # bench/backfill.py

    with tempfile.TemporaryDirectory() as tmp:
        main_url, tel_url, created = databases(a.backend, Path(tmp))
        kw = {"redis_url": a.redis, "redis_namespace": f"benchtick{os.getpid()}:"} if a.redis else {}
        ctx = open_context(Settings(data_dir=Path(tmp), secret_key=base64.b64encode(b"b" * 32).decode(),
                                    main_url=main_url, telemetry_url=tel_url, **kw))
        try:
            add_systems(ctx, a, base_url)
            for k in range(a.ticks):
                clock.set_now(NOW + 60 * k)
                d, wall, cpu, n = one_tick(ctx, a)
                print(f"tick {k + 1}: {a.systems} systems, {a.accounts} accounts, {a.latency_ms:g} ms per vendor answer, "
                      f"concurrency {a.concurrency}, {a.backend}{' + Redis' if a.redis else ''}: tick {wall:.2f} s "
                      f"({a.systems / wall:.0f} systems/s), {d['succeeded']} ok, {d['failed']} failed, {n} sessions, "
                      f"{d['readings']} readings, CPU {cpu:.2f} s ({1000 * cpu / a.systems:.1f} ms per poll)", flush=True)
        finally:
            if a.redis:
                from workers import drop_redis_namespace  # bench/workers.py

                drop_redis_namespace(a.redis, kw["redis_namespace"])
            ctx.close()
            drop(created)


def add_systems(ctx, a, base_url: str) -> None:
    with ctx.dbs.main.begin() as conn:
        create_user(conn, "owner", "a long bench password", "user")
        accounts: dict[tuple[str, int], int] = {}
        for i in range(a.systems):
            vendor = ("solarman", "sungrow")[i % 2]
            key = (vendor, i % a.accounts)
            kw = ({"account_id": accounts[key]} if key in accounts else
                  {"credentials": DEFAULT_CREDENTIALS[vendor], "rate_limits": UNLIMITED})
            sid = system_admin.add_system(conn, ctx.settings, f"s{i}", vendor, str(80_000_000 + i), "owner",
                                          alias=f"s{i}", base_url=base_url, **kw)
            if key not in accounts:
                accounts[key] = system_admin.systems_repo.system(conn, sid)["vendor_account_id"]


def one_tick(ctx, a) -> tuple[dict, float, float, int]:
    async def tick():
        poller = Poller(ctx, concurrency=a.concurrency)
        try:
            return await poller.poll(force=True)
        finally:
            await poller.aclose()

    before = len(sessions_repo.list_sessions(ctx.dbs.telemetry, limit=100 * a.systems))
    prof = None
    if a.profile:
        import cProfile

        prof = cProfile.Profile()
        asyncio.to_thread, real = _inline, asyncio.to_thread
    cpu0, t0 = time.process_time(), time.perf_counter()
    try:
        if prof is not None:
            prof.enable()
        report = asyncio.run(tick())
    finally:
        if prof is not None:
            prof.disable()
            asyncio.to_thread = real
            prof.dump_stats(a.profile)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    n = len(sessions_repo.list_sessions(ctx.dbs.telemetry, limit=100 * a.systems)) - before
    return report.to_dict(), wall, cpu, n


async def _inline(func, /, *args, **kwargs):
    """``asyncio.to_thread`` for the profile: the call on the event loop's thread."""
    return func(*args, **kwargs)


if __name__ == "__main__":
    main()

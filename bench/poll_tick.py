"""One minute-polling tick (jobs/poll.py) of many systems against the emulated clouds.

    .venv/bin/python bench/poll_tick.py [--systems 500] [--accounts 10] [--latency-ms 1000] [--concurrency 256]

Half Solarman, half Sungrow, spread over ``--accounts`` vendor accounts (unlimited:
the emulator), SQLite in a temporary directory, the cloud in its own process (its
fast clear-sky history, so its CPU is not charged to the poller) with ``--latency-ms``
on every answer. Prints the tick's wall time, systems per second, sessions written
and this process's CPU per poll.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
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
    with tempfile.TemporaryDirectory() as tmp:
        ctx = open_context(Settings(data_dir=Path(tmp), secret_key=base64.b64encode(b"b" * 32).decode()))
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

        async def tick():
            poller = Poller(ctx, concurrency=a.concurrency)
            try:
                return await poller.poll(force=True)
            finally:
                await poller.aclose()

        cpu0, t0 = time.process_time(), time.perf_counter()
        report = asyncio.run(tick())
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        n = len(sessions_repo.list_sessions(ctx.dbs.telemetry, limit=10 * a.systems))
        ctx.close()
    d = report.to_dict()
    print(f"{a.systems} systems, {a.accounts} accounts, {a.latency_ms:g} ms per vendor answer, "
          f"concurrency {a.concurrency}: tick {wall:.2f} s ({a.systems / wall:.0f} systems/s), "
          f"{d['succeeded']} ok, {d['failed']} failed, {n} sessions, {d['readings']} readings, "
          f"CPU {cpu:.2f} s ({1000 * cpu / a.systems:.1f} ms per poll)")


if __name__ == "__main__":
    main()

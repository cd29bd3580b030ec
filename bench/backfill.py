"""Backfill and daily-sync timings over the emulated vendor cloud (real HTTP).

    .venv/bin/python bench/backfill.py [--backend sqlite|postgres|both] [--plants 1000]

1. One Solarman plant from 2024-01-01 to 2025-11-22 12:00 (~66,000 records; the
   seed's run took 45 min 30 s); target < 5 s.
2. The daily sync of ``--plants`` plants: a first sync (each plant's first day), the
   next day's sync (its window starts at the newest stored reading), and a repeat of
   that sync (the same 24 h again, every reading already stored: a sync re-run, pages
   fetched twice); target < 60 s for 1,000, and the repeat no slower than the first.

The cloud runs in its own process (``wattline vendors serve``, no injected latency)
so its CPU is not charged to Wattline's; the fleet uses the cloud's fast clear-sky
history so that the emulator is not the bottleneck.
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
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

SEED_NOW = 1763812800  # 2025-11-22T12:00:00Z
START = 1704067200  # 2024-01-01T00:00:00Z
PG_ADMIN = os.environ.get("WATTLINE_TEST_PG", "postgresql+psycopg://root@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cloud(port: int, history_source: str) -> subprocess.Popen:
    # the seed plant is configured, so the cloud computes its history once at start-up
    # (warm_plants) instead of inside the first timed call
    code = ("from wattline.simulator.vendor_cloud.server import serve; "
            "from wattline.simulator.vendor_cloud.config import CloudConfig, default_profile; "
            f"cfg = CloudConfig(history_source={history_source!r}); "
            "cfg.solarman.plants['64786338'] = default_profile('64786338'); "
            f"serve(port={port}, config=cfg, log_level='warning')")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.2)
            return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("emulated cloud did not start")


def databases(backend: str, tmp: Path):
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'main.db'}", f"sqlite:///{tmp / 'telemetry.db'}", []
    names = create_pg_databases(2)
    base = PG_ADMIN.rsplit("/", 1)[0]
    return f"{base}/{names[0]}", f"{base}/{names[1]}", names


def create_pg_databases(n: int) -> list[str]:
    """``n`` fresh empty databases on the shared PostgreSQL (drop them with :func:`drop`)."""
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    names = [f"wl_bench_{uuid.uuid4().hex[:8]}" for _ in range(n)]
    with admin.connect() as c:
        for name in names:
            c.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return names


def drop(names):
    if not names:
        return
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        for n in names:
            c.execute(text(f"DROP DATABASE IF EXISTS {n} WITH (FORCE)"))


def run(backend: str, n_plants: int, base_url: str, fleet_url: str) -> None:
    from wattline import clock, provisioning
    from wattline.config import Settings
    from wattline.context import open_context
    from wattline.jobs.backfill import backfill_plant
    from wattline.jobs.sync import sync_all

    tmp = Path(tempfile.mkdtemp(prefix="wl-bench-"))
    main_url, tel_url, created = databases(backend, tmp)
    settings = Settings(data_dir=tmp, main_url=main_url, telemetry_url=tel_url,
                        secret_key=base64.b64encode(os.urandom(32)).decode())
    ctx = open_context(settings)
    try:
        with ctx.dbs.main.begin() as conn:
            acc = provisioning.add_vendor_account(conn, settings, "solarman", "bench",
                                               _creds(), base_url=base_url, rate_limits=provisioning.UNLIMITED)
            provisioning.add_vendor_plant(conn, "seed plant 123", "solarman", "64786338", "UTC", asset_id=123,
                                       start_operating_time=START, vendor_account_id=acc)
        t0 = time.perf_counter()
        r = asyncio.run(backfill_plant(ctx, 123, now=SEED_NOW))
        dt = time.perf_counter() - t0
        print(f"[{backend}] backfill 1 plant 2024-01-01..2025-11-22: {r.recordsSynced:,} records "
              f"({r.chunksProcessed} chunks) in {dt:.2f} s = {r.recordsSynced / dt:,.0f} records/s "
              f"(target < 5 s; seed: 45 min 30 s)")

        # fleet: plants whose cloud history starts two days before 'now' (cloud default profile
        # starts 2024-01-01; the sync window is the last 24 h)
        now = clock.now_s() // 900 * 900
        with ctx.dbs.main.begin() as conn:
            fleet = provisioning.add_vendor_account(conn, settings, "solarman", "fleet", _creds(), base_url=fleet_url,
                                                 rate_limits=provisioning.UNLIMITED)
            for i in range(n_plants):
                provisioning.add_vendor_plant(conn, f"fleet {i}", "solarman", f"fleet-{i}", "Europe/Berlin",
                                           start_operating_time=now - 2 * 86400, vendor_account_id=fleet)
        runs = {}
        for label, at in (("first sync", now - 86400), ("daily sync", now), ("repeat sync", now)):
            written, ingesting = _metric("wattline_readings_ingested_total"), _metric("wattline_ingest_seconds_sum")
            t0 = time.perf_counter()
            res = asyncio.run(sync_all(ctx, now=at))
            runs[label] = (res, time.perf_counter() - t0, _metric("wattline_readings_ingested_total") - written,
                           _metric("wattline_ingest_seconds_sum") - ingesting)
        for label, (res, dt, written, ingest_s) in runs.items():
            print(f"[{backend}] {label} {res.plantsSynced:,} plants: {res.totalRecords:,} records in {dt:.2f} s "
                  f"({res.totalRecords / dt:,.0f} records/s, errors={len(res.errors)}; target < 60 s); "
                  f"pipeline {ingest_s:.2f} s, readings written {written:,.0f}")
        print(f"[{backend}] repeat sync / first sync: {runs['repeat sync'][1] / runs['first sync'][1]:.2f} "
              f"(target <= 1)")
    finally:
        ctx.close()
        drop(created)


def _metric(sample: str) -> float:
    """A Prometheus sample of this process, summed over its labels (readings written,
    seconds spent in Pipeline.ingest)."""
    from prometheus_client import REGISTRY

    return sum(x.value for m in REGISTRY.collect() for x in m.samples if x.name == sample)


def _creds():
    from wattline.simulator.vendor_cloud.config import DEFAULT_CREDENTIALS

    return DEFAULT_CREDENTIALS["solarman"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--plants", type=int, default=1000)
    args = ap.parse_args()
    port, fleet_port = free_port(), free_port()
    # the seed plant gets the simulator's PV model; the fleet the cloud's cheap clear-sky
    # curve, so that the emulator's CPU does not dominate a 1,000-plant sync
    clouds = [start_cloud(port, "auto"), start_cloud(fleet_port, "clear_sky")]
    try:
        for backend in (("sqlite", "postgres") if args.backend == "both" else (args.backend,)):
            run(backend, args.plants, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{fleet_port}")
    finally:
        for c in clouds:
            c.terminate()
            c.wait(10)
    print(f"peak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
    main()

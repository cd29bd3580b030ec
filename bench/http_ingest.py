"""The HTTP ingest rate: the fleet's telemetry documents POSTed to
``POST /api/power-analytics/telemetry`` of a running ``wattline serve``, beside bare
requests to the same server.

    .venv/bin/python bench/http_ingest.py [--classrooms 10] [--devices 6] [--documents 5000] [--batch 100]
        [--telemetry-url postgresql+psycopg://root@127.0.0.1:5432/bench_http]

``wattline serve`` runs as a separate process (uvicorn, one worker) on fresh databases
(SQLite files, or the PostgreSQL database of ``--telemetry-url``, dropped and created
again: its name must start with ``bench_``), with the fleet registered and an ingest
token. One client (httpx, keep-alive) sends the simulated fleet's telemetry documents
(``wattline.simulator.devices``, with its repeats and out-of-order messages) as JSON
arrays of ``--batch`` documents, one request after the other. Bare baselines on the
same server and connection: ``GET /health`` (a request that touches both databases
with one trivial query each), and the same POST bodies with a viewer token (HTTP, the
body read and the bearer check, then 403: everything but the ingest). Afterwards the
set of (device, timestamp) of the documents must equal the energy readings stored.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from campus_setup import (drop_database, fresh_databases, readings_without_entry, register_fleet,  # noqa: E402
                          stored_readings)
from mqtt_ingest import fleet_messages  # noqa: E402

from wattline.domain import timeutil  # noqa: E402
from wattline.security import tokens  # noqa: E402
from wattline.simulator.devices import campus_fleet  # noqa: E402

URL = "/api/power-analytics/telemetry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(client: httpx.Client, requests) -> tuple[float, np.ndarray, list[int]]:
    """(elapsed s, per-request ms, status codes) of ``requests`` (method, path, body, headers) in turn."""
    lat, codes = [], []
    t0 = time.perf_counter()
    for method, path, body, headers in requests:
        t = time.perf_counter()
        r = client.request(method, path, content=body, headers=headers)
        lat.append((time.perf_counter() - t) * 1e3)
        codes.append(r.status_code)
    return time.perf_counter() - t0, np.array(lat), codes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classrooms", type=int, default=10)
    ap.add_argument("--devices", type=int, default=6)
    ap.add_argument("--documents", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=100, help="documents per POST")
    ap.add_argument("--telemetry-url", default=None, help="PostgreSQL telemetry database (name bench_…); default SQLite")
    args = ap.parse_args()

    docs = []
    for topic, payload in fleet_messages(args.classrooms, args.devices, int(args.documents * 1.3) + 100):
        if topic.endswith("/telemetry") and len(docs) < args.documents:
            docs.append(json.loads(payload))
    bodies = [json.dumps(docs[a:a + args.batch]).encode() for a in range(0, len(docs), args.batch)]
    print(f"fleet: {args.classrooms} classrooms x {args.devices} devices; {len(docs)} telemetry documents "
          f"in {len(bodies)} POSTs of {args.batch}")
    with tempfile.TemporaryDirectory(prefix="wl-bench-http-") as tmp:
        info = fresh_databases(Path(tmp) / "data", args.telemetry_url)
        dbs = info.open()
        series = register_fleet(dbs, campus_fleet(args.classrooms, args.devices, 0))
        with dbs.main.begin() as conn:
            ingest = tokens.create_token(conn, "bench ingest", "ingest")
            viewer = tokens.create_token(conn, "bench viewer", "viewer")
        port = free_port()
        env = {k: v for k, v in info.env().items() if k != "WATTLINE_MQTT_URL"}  # no MQTT ingester in serve
        err = (Path(tmp) / "serve.err").open("w")
        proc = subprocess.Popen([sys.executable, "-m", "wattline.cli", "serve", "--port", str(port)], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(base + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("wattline serve did not start:\n" + (Path(tmp) / "serve.err").read_text()[-3000:])
                time.sleep(0.1)
            json_h = {"Content-Type": "application/json"}
            with httpx.Client(base_url=base, timeout=120) as client:
                health = timed(client, [("GET", "/health", None, {})] * len(bodies))
                refused = timed(client, [("POST", URL, b, {**json_h, "Authorization": f"Bearer {viewer}"})
                                         for b in bodies])
                ingested = timed(client, [("POST", URL, b, {**json_h, "Authorization": f"Bearer {ingest}"})
                                          for b in bodies])
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            err.close()
        expected = {(d["esp32_name"], d["device_id"], timeutil.parse_instant(d["timestamp"])) for d in docs}
        stored, rows = stored_readings(dbs, series)
        not_in_ledger = readings_without_entry(dbs, series)
        dbs.dispose()
        drop_database(args.telemetry_url)
    bad = [c for c in ingested[2] if c not in (200, 202)]
    backend = "PostgreSQL" if args.telemetry_url else "SQLite"
    print(f"{'requests (' + backend + ')':<34} | {'req/s':>7} {'docs/s':>8} | {'p50 ms':>7} {'p99 ms':>7}")
    for name, (dt, lat, _codes), per_doc in (("GET /health (bare)", health, False),
                                             (f"POST {args.batch} docs, viewer: 403 (bare)", refused, True),
                                             (f"POST {args.batch} docs, ingest", ingested, True)):
        docs_s = f"{len(docs) / dt:>8,.0f}" if per_doc else f"{'':>8}"
        print(f"{name:<34} | {len(bodies) / dt:>7,.0f} {docs_s} | {np.percentile(lat, 50):>7.1f} "
              f"{np.percentile(lat, 99):>7.1f}")
    print(f"ingest / bare POST: {refused[0] / ingested[0]:.2f}; lost {len(expected - stored)}, "
          f"extra {len(stored - expected) + rows - len(stored)}, of {len(expected):,} readings"
          + (f"; WARNING {len(bad)} ingest requests answered {sorted(set(bad))}" if bad else "")
          + (f"; WARNING {not_in_ledger} readings without a ledger entry" if not_in_ledger else ""))
    if os.environ.get("BENCH_VERBOSE"):
        print(f"status codes: health {set(health[2])}, viewer {set(refused[2])}, ingest {set(ingested[2])}")


if __name__ == "__main__":
    main()

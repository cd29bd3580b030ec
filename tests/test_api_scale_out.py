"""Two ``wattline serve`` processes on one PostgreSQL pair take Fronius pushes and HTTP
device telemetry at once, as behind a load balancer: every push and document is
stored once, the same push sent to both at the same instant is accepted by one and
409 from the other, and the same telemetry batch sent to both leaves one reading per
(device, timestamp)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from test_mqtt_faults import FAULTS, START, register_fleet
from world import env_for, make_ctx
from wattline import provisioning
from wattline.domain.timeutil import parse_instant
from wattline.security import tokens
from wattline.simulator.devices import DeviceFleetSimulator, campus_fleet
from wattline.simulator.device_publisher import run_fleet

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
WATTLINE = os.path.join(os.path.dirname(sys.executable), "wattline")
EXAMPLE = json.loads((Path(__file__).parent / "vendors" / "fixtures" / "fronius-push" /
                      "example-request.json").read_text())
TS = 1737439200  # the example's timestamp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([WATTLINE, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=log.open("w"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
        assert proc.poll() is None, log.read_text()[-3000:]
    raise AssertionError(f"serve did not answer: {log.read_text()[-3000:]}")


def push(url: str, ts: int) -> int:
    body = dict(EXAMPLE, timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)))
    return httpx.post(f"{url}/api/push/fronius", json=body, timeout=30).status_code


@pytest.mark.parametrize("dbs", ["postgres"], indirect=True)
def test_two_api_processes_store_every_push_and_document_once(dbs, tmp_path):
    ctx = make_ctx(dbs, tmp_path)
    with dbs.main.begin() as conn:
        account = provisioning.add_vendor_account(conn, ctx.settings, "fronius", "home",
                                                  {"api_key": EXAMPLE["apiKey"]})
        provisioning.add_vendor_plant(conn, "Fronius home", "fronius", EXAMPLE["siteId"], "Australia/Sydney",
                                      vendor_account_id=account)
        ingest_token = tokens.create_token(conn, "ingest", "ingest")
    fleet = campus_fleet(2, 3, seed=5, faults=FAULTS)
    series = register_fleet(ctx, fleet)
    docs: list[dict] = []
    run_fleet(None, DeviceFleetSimulator(fleet, START), speed=0, until_ts=START + 900,
              stop=threading.Event(),
              sink=lambda evs: docs.extend(e.payload for e in evs if e.kind == "telemetry"))
    env = dict(env_for(ctx), WATTLINE_LOG_LEVEL="WARNING")
    servers = [serve(env, tmp_path / f"serve-{k}.log") for k in range(2)]
    try:
        urls = [u for _, u in servers]
        with ThreadPoolExecutor(16) as pool:
            # 20 distinct pushes, alternating between the two processes
            distinct = list(pool.map(lambda k: push(urls[k % 2], TS + 300 * k), range(20)))
            # 8 more, each sent to both at once: one is stored, the other is told 409
            codes = list(pool.map(lambda job: push(urls[job[0]], job[1]),
                                  [(k, TS + 300 * (100 + n)) for n in range(8) for k in (0, 1)]))
            both = [codes[i:i + 2] for i in range(0, len(codes), 2)]
            # the telemetry in batches of 20, every batch to both processes at once
            batches = [docs[i:i + 20] for i in range(0, len(docs), 20)]
            head = {"Authorization": f"Bearer {ingest_token}"}
            answers = list(pool.map(
                lambda job: httpx.post(f"{urls[job[0]]}/api/power-analytics/telemetry", json=job[1], headers=head,
                                       timeout=60).status_code,
                [(k, b) for b in batches for k in (0, 1)]))
    finally:
        for proc, _ in servers:
            proc.terminate()
        for proc, _ in servers:
            proc.wait(30)
    assert distinct == [200] * 20
    assert all(sorted(pair) == [200, 409] for pair in both), both
    assert all(code in (200, 201, 202, 207) for code in answers), answers
    with dbs.telemetry.connect() as c:
        pushed = c.exec_driver_sql("SELECT COUNT(*) FROM sessions WHERE cause = 'PUSH' AND success").scalar()
        push_ts = c.exec_driver_sql(
            "SELECT COUNT(DISTINCT r.ts) FROM readings r JOIN raw_events e ON e.id = r.raw_event_id "
            "WHERE e.source = 'fronius-push'").scalar()
        ids = ",".join(str(int(s)) for s in series.values())
        stored = c.exec_driver_sql(f"SELECT series_id, ts FROM readings WHERE series_id IN ({ids})").all()
    assert pushed == 28 and push_ts == 28
    sent = {(series[(d["esp32_name"], d["device_id"])], parse_instant(d["timestamp"])) for d in docs}
    assert len(stored) == len(set(stored)) == len(sent) and set(stored) == sent

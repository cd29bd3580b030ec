"""The night's reconciliation for a campus, beside a bare read of the same rows.

    PYTHONPATH=src .venv/bin/python bench/reconcile.py [--backend sqlite|postgres]
        [--classrooms 20] [--devices 10] [--step 30]

Sets up an Asia/Kolkata campus of ``--classrooms`` x ``--devices`` devices (half
counters, half power-integrated), feeds one local day of telemetry every ``--step``
seconds through the real ingest path (``jobs.device_telemetry.ingest_documents``,
hour by hour; a few devices with a gap and an out-of-order burst), then times:

1. ``bare``: reading the rows the checks read — every device series' readings of the
   day, its messages' arrivals and its stored buckets — with no checks;
2. ``reconcile``: ``jobs.reconcile.reconcile_day`` (all checks, buckets rebuilt and
   compared, review items written);
3. ``again``: the same night again (nothing new to open).

Seed target: < 5 min for the night's work.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from wattline import provisioning  # noqa: E402
from wattline.config import Settings  # noqa: E402
from wattline.context import open_context  # noqa: E402
from wattline.domain import timeutil  # noqa: E402
from wattline.jobs import reconcile as J  # noqa: E402
from wattline.jobs.device_telemetry import ingest_documents  # noqa: E402
from wattline.store import reconcile_queries as Q  # noqa: E402

TZ = "Asia/Kolkata"
DAY = date(2025, 11, 5)
PG_ADMIN = os.environ.get("WATTLINE_TEST_PG", "postgresql+psycopg://root@127.0.0.1:5432/test")


def _context(backend: str, tmp: Path):
    """The context, and a function dropping what was created for it."""
    if backend == "sqlite":
        return open_context(Settings(data_dir=tmp, main_url=None, telemetry_url=None)), lambda: None
    from sqlalchemy import create_engine, text

    names = [f"bench_rec_{uuid.uuid4().hex[:8]}_{k}" for k in ("main", "tel")]
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        for n in names:
            c.execute(text(f'CREATE DATABASE "{n}"'))
    base = PG_ADMIN.rsplit("/", 1)[0]

    def drop() -> None:
        with admin.connect() as c:
            for n in names:
                c.execute(text(f'DROP DATABASE IF EXISTS "{n}"'))
        admin.dispose()

    return open_context(Settings(data_dir=tmp, main_url=f"{base}/{names[0]}",
                                 telemetry_url=f"{base}/{names[1]}")), drop


def _doc(esp: str, dev: str, ts: int, seq: int, wh: float | None, start: int) -> dict:
    d = {"esp32_name": esp, "classroom": "", "device_id": dev, "timestamp": timeutil.iso(ts), "power_w": 40.0,
         "switch_state": {"sw1": True}, "uptime_seconds": ts - start + 60, "status": "online", "sequence_no": seq,
         "firmware_ver": "v2.0.0", "wifi_rssi": -50}
    if wh is not None:
        d["energy_wh_total"] = wh
    return d


def setup(ctx, classrooms: int, devices: int, step: int) -> tuple[int, int]:
    start, end = timeutil.day_bounds(DAY, TZ)
    fleet = []
    with ctx.dbs.main.begin() as conn:
        org = provisioning.ensure_organization(conn, "campus", TZ)
        for c in range(classrooms):
            room = f"CR-{101 + c}"
            provisioning.add_classroom(conn, room, organization_id=org)
            esp = f"ESP{c + 1:02d}"
            for d in range(devices):
                dev = f"dev_{d}"
                method = "counter" if d % 2 == 0 else "power"
                provisioning.add_device(conn, esp, dev, room, switch="sw1", method=method, organization_id=org)
                fleet.append((esp, dev, room, method == "counter"))
    n = 0
    t0 = time.perf_counter()
    for hour in range(24):
        batch, late = [], []
        for k, (esp, dev, room, counter) in enumerate(fleet):
            for ts in range(start + hour * 3600, min(start + (hour + 1) * 3600, end), step):
                i = (ts - start) // step
                if k % 17 == 0 and start + 10 * 3600 < ts < start + 10 * 3600 + 1800:
                    continue  # a gap
                d = _doc(esp, dev, ts, i, 1000 + i * 0.4 if counter else None, start)
                d["classroom"] = room
                (late if k % 23 == 0 and hour == 14 and ts < start + 14 * 3600 + 600 else batch).append(d)
        arrival = start + (hour + 1) * 3600 + 5
        for part in (batch, late):
            if part:
                ingest_documents(ctx.pipeline, ctx.dbs.main_reader, org, part, source="bench", now=arrival)
                n += len(part)
                arrival += 60  # the held-back messages arrive after the hour's
    print(f"setup: {len(fleet)} devices, {n} messages ingested in {time.perf_counter() - t0:.1f} s")
    return org, n


def bare(ctx, org: int) -> float:
    """The rows the checks read, read without checking anything."""
    start, end = timeutil.day_bounds(DAY, TZ)
    t0 = time.perf_counter()
    with ctx.dbs.main_reader.connect() as conn:
        devs = Q.organization_devices(conn, org)
    series = sorted(s for d in devs for s in d["series"].values())
    rows = 0
    with ctx.dbs.telemetry.connect() as conn:
        for i in range(0, len(series), 30):
            chunk = series[i:i + 30]
            rows += sum(len(v) for v in Q.reading_times(conn, chunk, start, end).values())
            rows += len(Q.stored_buckets(conn, chunk, start, end))
        arr = Q.message_arrivals(conn, [d["asset_id"] for d in devs], start, end)
        rows += sum(len(v["ts"]) for v in arr.values())
    took = time.perf_counter() - t0
    print(f"bare read: {rows} rows in {took:.2f} s")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--classrooms", type=int, default=20)
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--step", type=int, default=30, help="seconds between a device's messages")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ctx, drop = _context(a.backend, Path(tmp))
        try:
            org, _ = setup(ctx, a.classrooms, a.devices, a.step)
            took_bare = bare(ctx, org)
            org_row = {"id": org, "name": "campus", "timezone": TZ}
            s = J.reconcile_day(ctx, org_row, DAY)
            print(f"reconcile: {s.devices_checked} devices in {s.seconds:.2f} s "
                  f"({s.seconds / max(took_bare, 1e-9):.1f}x the bare read); findings {dict(s.findings)}, "
                  f"fixed {s.fixed}, items opened {s.items_opened}")
            again = J.reconcile_day(ctx, org_row, DAY)
            print(f"again: {again.seconds:.2f} s, items opened {again.items_opened}, "
                  f"buckets rewritten {again.buckets_rewritten}")
            print(f"target < 300 s for the night's work: {'met' if s.seconds < 300 else 'NOT met'}")
        finally:
            ctx.close()
            drop()


if __name__ == "__main__":
    main()

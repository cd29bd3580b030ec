"""Dashboard benchmark: server time of every page and chart endpoint on the demo data.

Sets up the demo (work order 456: plants 123, 124, 125 on the emulated vendor clouds,
backfilled from --since, default 2024-01-01, i.e. about two years of 15-minute data) in a
temporary WATTLINE_DATA_DIR on SQLite, creates a user, signs in through the form, then
times each route through ``fastapi.testclient.TestClient(create_app(ctx))``: --n requests
each after a short warm-up, printing p50 / p95 / max in ms. Target: p95 < 100 ms.

Bare baselines measured in the same run (see /work/shared/MACHINE-LIMITS.md):
  * an empty FastAPI route through the same TestClient (framework + client overhead);
  * the stdlib sqlite3 SELECT of one plant's 31-day 15-minute readings (the data itself).

    .venv/bin/python bench/dashboard.py [--since 2024-01-01] [--n 50] [--data-dir DIR] [--systems-only]

With --data-dir the data is kept there and a second run only tops up the backfill.

The systems part (issue 11): two monitored systems owned by the bench user — Home
(Selectronic) with --system-days (default 30) of one-minute readings of solar_w,
load_w, battery_w, grid_w and battery_soc, Shed (Fronius) with 7 days — the composite
"both", and a poll session each; then the pages /systems, /systems/{id},
/composites/both, /setup and the /admin/* pages, with the API calls their scripts make
(/api/data/flows now and over 24H/7D/30D, /api/data/latest, /api/data/historical,
/api/composite, the admin API). A route not in this build (404) is listed, not timed.
``--systems-only`` skips the demo plants.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import warnings
from pathlib import Path

USER, PASSWORD = "bench", "bench password 1234"
TARGET_P95_MS = 100.0


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[max(0, math.ceil(q * len(s)) - 1)]


FIRST_MS: dict[str, float] = {}  # the first (cold) call of each route


def timed(client, path: str, n: int, warmup: int = 3, headers: dict | None = None) -> tuple[list[float], int]:
    size = 0
    for i in range(warmup):
        t0 = time.perf_counter()
        r = client.get(path, headers=headers)
        if i == 0:
            FIRST_MS[path] = (time.perf_counter() - t0) * 1000
        if r.status_code != 200:
            raise SystemExit(f"{path}: HTTP {r.status_code} {r.text[:200]}")
        size = len(r.content)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(path, headers=headers)
        out.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"{path}: HTTP {r.status_code}")
    return out, size


def set_up_systems(ctx, owner: str, days: int) -> dict[str, int]:
    """Home (Selectronic, ``days`` of minute readings) and Shed (Fronius, 7 days), the
    composite "both" and a successful poll session each; returns their ids."""
    import numpy as np

    from wattline import clock, system_admin
    from wattline.domain.readings import ReadingBatch
    from wattline.store import sessions_repo, systems_repo

    now = clock.now_s() // 60 * 60
    with ctx.dbs.main.begin() as conn:
        known = {s["display_name"]: s["id"] for s in systems_repo.list_systems(conn)}
        if "Home" in known:
            return {"Home": known["Home"], "Shed": known["Shed"]}
        ids = {"Home": system_admin.add_system(conn, ctx.settings, "Home", "selectronic", "1586", owner,
                                               timezone="Australia/Sydney",
                                               credentials={"email": "bench@example.com", "password": "pw"}),
               "Shed": system_admin.add_system(conn, ctx.settings, "Shed", "fronius", "202", owner,
                                               timezone="Australia/Sydney", credentials={})}
        system_admin.add_composite(conn, "both", "Home and shed", list(ids.values()))
        series = {n: {p["key"]: p["id"] for p in systems_repo.system_points(conn, i)} for n, i in ids.items()}
    for name, n_days, sign in (("Home", days, -1.0), ("Shed", 7, 1.0)):
        for day in range(n_days):  # a day per batch, oldest first (appends)
            ts = np.arange(now - (n_days - day) * 86400, now - (n_days - day - 1) * 86400, 60, dtype=np.int64)
            hour = (ts % 86400) / 3600.0
            solar = np.clip(5.0 * np.sin(np.pi * (hour - 6) / 12), 0, None)
            load = 0.6 + 0.5 * (np.abs(hour - 19) < 3)
            charge = np.clip(solar - load, -1.5, 2.5)  # + charging, kW
            cols = [(series[name][k], v) for k, v in (("solar_w", solar), ("load_w", load),
                                                      ("battery_w", sign * charge), ("grid_w", load + charge - solar),
                                                      ("battery_soc", 50 + 40 * np.sin(np.pi * hour / 24)))]
            sid = np.concatenate([np.full(len(ts), s) for s, _ in cols])
            ctx.pipeline.ingest(ReadingBatch(sid, np.tile(ts, len(cols)), np.concatenate([v for _, v in cols]),
                                             np.full(len(sid), -1), [], "bench"), refresh_summaries=False)
    sessions_repo.record_many(ctx.dbs.telemetry, [
        {"system_id": i, "vendor_type": vt, "cause": "CRON", "started_at_ms": (now - 62) * 1000,
         "duration_ms": 1500, "success": True, "num_readings": 5}
        for i, vt in ((ids["Home"], "selectronic"), (ids["Shed"], "fronius"))])
    return ids


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--since", default="2024-01-01", help="start of the demo history (date or ISO time)")
    ap.add_argument("--n", type=int, default=50, help="timed requests per route")
    ap.add_argument("--data-dir", default=None, help="keep the data here (default: a temp dir, removed after)")
    ap.add_argument("--systems-only", action="store_true", help="skip the demo plants: only the systems part")
    ap.add_argument("--system-days", type=int, default=30, help="days of minute readings of the Home system")
    args = ap.parse_args()

    tmp = None
    if args.data_dir:
        data_dir = Path(args.data_dir)
    else:
        tmp = data_dir = Path(tempfile.mkdtemp(prefix="wattline-dash-bench-"))
    os.environ["WATTLINE_DATA_DIR"] = str(data_dir)
    for var in ("WATTLINE_MAIN_URL", "WATTLINE_TELEMETRY_URL"):  # this benchmark is about SQLite
        os.environ.pop(var, None)
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from rich.console import Console

    from wattline import demo, logs
    from wattline.api.app import create_app
    from wattline.context import open_context
    from wattline.domain import timeutil
    from wattline.security import users
    from wattline.store import plant_queries

    logs.configure("WARNING")
    console = Console(stderr=True)
    since = args.since if "T" in args.since else f"{args.since}T00:00:00Z"
    since_ts = timeutil.parse_instant(since)
    ctx = None
    try:
        ctx = open_context()
        t0 = time.perf_counter()
        if not args.systems_only:
            with demo.BackgroundCloud(demo.cloud_config(since_ts), port=0) as cloud:
                demo.set_up(ctx, cloud.base_url, since_ts)
                asyncio.run(demo.backfill_all(ctx, console))
        with ctx.dbs.main.begin() as conn:
            try:
                users.create_user(conn, USER, PASSWORD, "superadmin")
            except users.UserError:
                pass  # kept from an earlier run with --data-dir
        t1 = time.perf_counter()
        sys_ids = set_up_systems(ctx, USER, args.system_days)
        systems_s = time.perf_counter() - t1
        setup_s = time.perf_counter() - t0
        with ctx.dbs.telemetry.connect() as conn:
            readings = conn.exec_driver_sql("SELECT count(*) FROM readings").scalar()

        plant_ids = [p.plant_id for p in demo.PLANTS]
        wo = demo.WORK_ORDER_ID
        home, shed = sys_ids["Home"], sys_ids["Shed"]
        power = "solar_w,load_w,battery_w,grid_w"
        system_pages = {
            "/systems": ["/api/composite"],
            f"/systems/{home}": [f"/api/data/latest?systemId={home}&includeMetadata=true",
                                 f"/api/data/flows?systemId={home}&range=now",
                                 f"/api/data/flows?systemId={home}&range=24H",
                                 f"/api/data/historical?systemIds={home}&pointKeys={power}&range=24H"],
            f"/systems/{home} (range 7D)": [f"/api/data/flows?systemId={home}&range=7D",
                                            f"/api/data/historical?systemIds={home}&pointKeys={power}&range=7D"],
            f"/systems/{home} (range 30D)": [f"/api/data/flows?systemId={home}&range=30D",
                                             f"/api/data/historical?systemIds={home}&pointKeys={power}&range=30D"],
            "/composites/both": ["/api/data/latest?composite=both&includeMetadata=true",
                                 "/api/data/flows?composite=both&range=now", "/api/data/flows?composite=both&range=24H",
                                 f"/api/data/historical?systemIds=both&pointKeys={power}&range=24H"],
            "/setup": [],
            "/admin/systems": ["/api/admin/systems"],
            f"/admin/systems/{shed}/points": [f"/api/admin/systems/{shed}/points"],
            "/admin/sessions": ["/api/admin/sessions?limit=200"],
            "/admin/users": ["/api/admin/users"],
            "/admin/connection-test": [],
            "/admin/database": ["/api/admin/database"],
        }
        pages = {} if args.systems_only else {
            "/": ["/api/plants", "/api/work-orders"],
            **{f"/plants/{p}": [f"/api/plants/{p}", f"/api/telemetry/plant/{p}/charts/energy-15m?days=31",
                                f"/api/telemetry/plant/{p}/charts/power?hours=24",
                                f"/api/telemetry/plant/{p}/charts/daily-energy?days=31"] for p in plant_ids},
            f"/work-orders/{wo}": [f"/api/work-orders/{wo}?days=31"],
            "/sync-logs": ["/api/sync-logs?limit=100"],
            "/sync-logs?status=success&plant_id=123": ["/api/sync-logs?plant_id=123&status=success&limit=100"],
        }

        # bare baseline 1: an empty route through the same client stack
        bare = FastAPI()

        @bare.get("/empty")
        def empty() -> dict:
            return {}

        with TestClient(bare) as bc:
            empty_ms, _ = timed(bc, "/empty", args.n)
        # bare baseline 2: the stdlib reading one plant's 31-day window
        if args.systems_only:
            with ctx.dbs.main_reader.connect() as conn:
                from wattline.store import registry

                sid = registry.point(conn, home, "load_w")["id"]
        else:
            plant = plant_queries.plant(ctx.dbs.main_reader, plant_ids[0])
            sid = plant["series"]["energy_total"]
        now = int(time.time())
        db = sqlite3.connect(data_dir / "telemetry.db")
        sql_ms = []
        for i in range(args.n + 3):
            t = time.perf_counter()
            rows = db.execute("SELECT ts, value FROM readings WHERE series_id = ? AND ts >= ? AND ts < ? ORDER BY ts",
                              (sid, now - 31 * 86400, now + 1)).fetchall()
            if i >= 3:
                sql_ms.append((time.perf_counter() - t) * 1000)
        db.close()

        results: dict[str, tuple[list[float], int]] = {}
        missing: list[str] = []
        with TestClient(create_app(ctx), follow_redirects=False) as client:
            r = client.post("/login", data={"username": USER, "password": PASSWORD})
            assert r.status_code == 303 and "wattline_session" in client.cookies, r.text[:200]
            anon = TestClient(client.app)
            results["/login (GET, anonymous)"] = timed(anon, "/login", args.n)
            for page, calls in pages.items():
                results[page] = timed(client, page, args.n)
                for call in calls:
                    if call not in results:
                        results[call] = timed(client, call, args.n)
            for page, calls in system_pages.items():
                if not page.endswith(")"):
                    results[page] = timed(client, page, args.n)
                for call in calls:
                    if call in results or call in missing:
                        continue
                    t0 = time.perf_counter()
                    probe = client.get(call)
                    cold_ms = (time.perf_counter() - t0) * 1000
                    if probe.status_code == 404 and "Not Found" in probe.text:
                        missing.append(call)  # another helper's route, not in this build
                    else:
                        results[call] = timed(client, call, args.n)
                        FIRST_MS[call] = cold_ms
            results["/static/app.js"] = timed(client, "/static/app.js", args.n)
            results["/static/systems.js"] = timed(client, "/static/systems.js", args.n)
            results["/static/plotly.min.js (gzip)"] = timed(client, "/static/plotly.min.js", args.n,
                                                            headers={"Accept-Encoding": "gzip"})
    finally:
        if ctx is not None:
            ctx.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    demo_text = "no demo plants" if args.systems_only else f"demo since {since}, 3 plants"
    print(f"\nwattline dashboard benchmark: {demo_text}, 2 systems ({args.system_days} + 7 days of minute "
          f"readings), {readings:,} readings, SQLite, {args.n} requests per route, set-up {setup_s:.1f} s "
          f"(systems {systems_s:.1f} s)")
    print(f"bare baselines: empty FastAPI route via TestClient p50 {pct(empty_ms, .5):.2f} ms / "
          f"p95 {pct(empty_ms, .95):.2f} ms; sqlite3 SELECT of a 31-day window ({len(rows)} rows) "
          f"p50 {pct(sql_ms, .5):.2f} ms / p95 {pct(sql_ms, .95):.2f} ms\n")
    width = max(len(k) for k in results) + 2
    print(f"{'route':<{width}}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'p95/empty':>11}{'bytes':>11}  p95<100ms")
    worst = 0.0
    for route, (ms, size) in results.items():
        p95 = pct(ms, .95)
        if not route.startswith("/static/"):
            worst = max(worst, p95)
        ok = "ok" if p95 < TARGET_P95_MS else "SLOW"
        print(f"{route:<{width}}{pct(ms, .5):>9.2f}{p95:>9.2f}{max(ms):>9.2f}{p95 / pct(empty_ms, .95):>10.1f}x"
              f"{size:>11,}  {ok}")
    print("\nper page: the HTML shell plus the API calls its script makes (run in parallel by the browser; "
          "sum shown as an upper bound)")
    for page, calls in {**pages, **system_pages}.items():
        shell = [page] if page in results else []
        calls = [c for c in calls if c in results]
        p50 = sum(pct(results[c][0], .5) for c in shell + calls)
        p95 = sum(pct(results[c][0], .95) for c in shell + calls)
        print(f"  {page:<{width}} {len(shell) + len(calls)} requests: sum of p50 {p50:7.2f} ms, "
              f"sum of p95 {p95:7.2f} ms")
    if missing:
        print("\nnot in this build (404), not timed: " + ", ".join(missing))
    flows = [k for k in FIRST_MS if k.startswith("/api/data/flows")]
    print("\nfirst (cold) call of the flow routes (whole days not yet in the day cache): " +
          ", ".join(f"{k.split('?')[1]} {FIRST_MS[k]:.0f} ms" for k in flows))
    verdict = "met" if worst < TARGET_P95_MS else "MISSED"
    print(f"\nslowest page/API p95: {worst:.2f} ms -> target p95 < {TARGET_P95_MS:.0f} ms {verdict}")
    return 0 if worst < TARGET_P95_MS else 1


if __name__ == "__main__":
    sys.exit(main())

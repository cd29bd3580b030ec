"""Recalculation of a campus-year: re-aggregating the ledger and pricing it (seed: < 10 min).

    .venv/bin/python bench/recalc_campus_year.py [--classrooms 2] [--devices 6] [--days 14] [--interval 30]
        [--target-classrooms 10] [--target-devices 10] [--telemetry-url postgresql+psycopg://…/bench_recalc]

Costs are priced on read (``store.energy_costs``): a new cost version re-prices what it
covers with nothing to rewrite, and what a "recalculation" still has to do is (1)
re-aggregate the stored day/month/year buckets from the ledger (what reconciliation
does for a range it repairs: ``pipeline.aggregate.recompute``) and (2) price every
classroom's days, months and year from its ledger entries (``store.energy_costs.
group_costs``: the ledger read from the database plus the arithmetic).

A campus of ``--classrooms`` x ``--devices`` counter devices reporting every
``--interval`` s (the simulated fleet's, seed 002) for ``--days`` days is ingested
through the pipeline first (not timed as recalculation), two cost versions in effect
(a global one and a classroom's from mid-range), then both steps are timed. The
figure for the target campus-year (default: 10 classrooms x 10 devices, as the
README's classroom-year pricing, for 365 days) is extrapolated linearly in ledger
entries — both steps are linear in them (per-series scans, vectorised arithmetic) —
with the arithmetic printed. Days, months and the year must cost the same to the
micro-unit.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from campus_setup import TZ, drop_database, fresh_databases, register_fleet  # noqa: E402

from campus_setup import SECRET  # noqa: E402

from wattline import clock, logs  # noqa: E402
from wattline.config import Settings  # noqa: E402
from wattline.context import AppContext  # noqa: E402
from wattline.domain import timeutil  # noqa: E402
from wattline.domain.readings import ReadingBatch  # noqa: E402
from wattline.pipeline import Pipeline  # noqa: E402
from wattline.pipeline.aggregate import recompute  # noqa: E402
from wattline.simulator.devices import Faults, campus_fleet  # noqa: E402
from wattline.store import cost_versions_repo  # noqa: E402
from wattline.jobs.reprice import reprice_work  # noqa: E402
from wattline.store.energy_costs import group_costs  # noqa: E402
from wattline.store.engines import write_transaction  # noqa: E402

FIRST_DAY = date(2025, 1, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classrooms", type=int, default=2)
    ap.add_argument("--devices", type=int, default=6)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--interval", type=int, default=30, help="seconds between a device's readings")
    ap.add_argument("--target-classrooms", type=int, default=10)
    ap.add_argument("--target-devices", type=int, default=10)
    ap.add_argument("--telemetry-url", default=None, help="PostgreSQL telemetry database (name bench_…); default SQLite")
    a = ap.parse_args()
    logs.configure("WARNING")

    start = timeutil.local_midnight(FIRST_DAY, TZ)
    end = start + a.days * 86400
    ts = np.arange(start, end + 1, a.interval, dtype=np.int64)
    fleet = campus_fleet(a.classrooms, a.devices, faults=Faults.none())
    with tempfile.TemporaryDirectory(prefix="wl-bench-recalc-") as tmp:
        info = fresh_databases(Path(tmp), a.telemetry_url)
        dbs = info.open()
        series = sorted(register_fleet(dbs, fleet))
        with dbs.main.begin() as conn:
            rooms = {g: n for g, n in conn.exec_driver_sql("SELECT id, name FROM groups WHERE kind = 'classroom'")}
            cost_versions_repo.add(conn, rate_micro_per_kwh=7_000_000, effective_from=start - 86400, currency="INR")
            first_room = cost_versions_repo.resolve_scope(conn, group=fleet.controllers[0].classroom,
                                                          group_kind="classroom")
            cost_versions_repo.add(conn, rate_micro_per_kwh=8_500_000, ref=first_room, currency="INR",
                                   effective_from=start + (a.days // 2) * 86400 + 13 * 3600 + 17)
        pipeline = Pipeline(dbs.telemetry, dbs.main_reader)
        rng = np.random.default_rng(2)
        n_series = len(series)
        # counters in kWh: 0-60 W a device, so 0-0.5 Wh a 30 s step
        wh = np.cumsum(rng.uniform(0, 60 * a.interval / 3600, (n_series, len(ts))), axis=1) + 1000.0
        t0 = time.perf_counter()
        per_batch = max(1, 86400 // a.interval)  # a day of every device per pipeline call
        for i in range(0, len(ts), per_batch):
            k = len(ts[i:i + per_batch])
            batch = ReadingBatch(np.repeat(np.array(series, np.int64), k), np.tile(ts[i:i + per_batch], n_series),
                                 (wh[:, i:i + per_batch] / 1000.0).ravel(), np.full(k * n_series, -1), [], "bench")
            pipeline.ingest(batch, refresh_summaries=False, now=end + 3600)
        t_ingest = time.perf_counter() - t0
        with dbs.telemetry.connect() as c:
            entries = c.exec_driver_sql(f"SELECT COUNT(*) FROM ledger WHERE series_id IN ({','.join(map(str, series))})"
                                        ).scalar()
        print(f"campus: {a.classrooms} classrooms x {a.devices} devices, one reading per {a.interval} s, "
              f"{a.days} days: {entries:,} ledger entries ({'PostgreSQL' if a.telemetry_url else 'SQLite'}; "
              f"ingested in {t_ingest:.1f} s, not counted)")

        t0, c0 = time.perf_counter(), time.process_time()
        with write_transaction(dbs.telemetry, series) as conn:
            written = recompute(conn, {s: (start, end + 1) for s in series}, {s: TZ for s in series})
        t_agg, c_agg = time.perf_counter() - t0, time.process_time() - c0
        print(f"  re-aggregate (days, months, years from the ledger): {t_agg:6.2f} s wall, {c_agg:6.2f} s CPU; "
              f"{written:,} bucket rows")

        totals, t_price, c_price = {}, {}, {}
        for period in ("day", "month", "year"):
            t0, c0 = time.perf_counter(), time.process_time()
            total = 0
            for gid in rooms:
                _tz, buckets = group_costs(dbs.main_reader, dbs.telemetry, gid, period, start, end)
                total += sum(b.cost_micro or 0 for b in buckets)
            t_price[period], c_price[period] = time.perf_counter() - t0, time.process_time() - c0
            totals[period] = total
            print(f"  price every classroom's {period + 's':7s}: {t_price[period]:6.2f} s wall, "
                  f"{c_price[period]:6.2f} s CPU")
        # the re-pricing job a new cost version starts (jobs/reprice.py): over [its effective
        # instant, now) it rebuilds the buckets from the ledger and prices the entries before/after
        clock.set_now(end + 3600)
        ctx = AppContext(Settings(data_dir=Path(tmp), secret_key=SECRET, main_url=info.main_url,
                                  telemetry_url=info.telemetry_url), dbs, pipeline)
        with dbs.main.begin() as conn:
            version, _ = cost_versions_repo.add(conn, rate_micro_per_kwh=9_000_000, effective_from=start,
                                                currency="INR", created_by="bench")
        t0, c0 = time.perf_counter(), time.process_time()
        job = asyncio.run(reprice_work(ctx, version["id"])(lambda _progress: None))
        t_job, c_job = time.perf_counter() - t0, time.process_time() - c0
        clock.set_now(None)
        print(f"  the re-pricing job of a new global version (jobs/reprice.py): {t_job:6.2f} s wall, {c_job:6.2f} s CPU; "
              f"{job['entries_covered']:,} entries covered, {job['buckets_rewritten']} buckets rewritten")
        dbs.dispose()
        drop_database(a.telemetry_url)
    assert len(set(totals.values())) == 1, totals
    print(f"  total {totals['year'] / 1e6:,.6f} INR: days, months and the year agree to the micro-unit")

    target_entries = a.target_classrooms * a.target_devices * (365 * 86400 // a.interval)
    factor = target_entries / entries
    print(f"campus-year {a.target_classrooms} classrooms x {a.target_devices} devices x 365 days at {a.interval} s = "
          f"{target_entries:,} entries = {factor:,.1f} x measured (linear in entries); seed target < 10 min:")
    # a recalculation = re-aggregate + price the days (months and years are sums of the days'
    # costs, to the micro-unit, as checked above); pricing all three periods shown beside
    for what, agg, day, every in (("wall", t_agg, t_price["day"], sum(t_price.values())),
                                  ("CPU", c_agg, c_price["day"], sum(c_price.values()))):
        measured = agg + day
        print(f"  {what:4s}: ({agg:.2f} re-aggregate + {day:.2f} price the days) = {measured:.2f} s x {factor:,.1f} = "
              f"{measured * factor:,.0f} s = {measured * factor / 60:.1f} min  (pricing days, months and years "
              f"separately: {(agg + every) * factor / 60:.1f} min)")
    print(f"  the re-pricing job: wall {t_job:.2f} s x {factor:,.1f} = {t_job * factor / 60:.1f} min, "
          f"CPU {c_job:.2f} s x {factor:,.1f} = {c_job * factor / 60:.1f} min")
    print("(wall: on this shared machine, other sessions' load included; CPU: this process's own time "
          "— on PostgreSQL the server's time is not in it)")


if __name__ == "__main__":
    main()

"""Cost on read: what pricing a campus-year costs, the figure that replaces the
issue's "re-pricing job" (seed target: a recalculation < 10 min).

    .venv/bin/python bench/cost_on_read.py [--devices 10] [--days 365] [--interval 60]

Costs are not stored: a read prices the ledger entries of its range. This times the
pricing arithmetic alone (``domain.cost.bucket_costs``: split at rate changes, price,
share over buckets) for ``--devices`` devices of one classroom over ``--days`` days
with one ledger entry every ``--interval`` seconds, and two rate changes a year, for
the classroom's days, months and its year. Reading the entries from the database comes
on top (the same read the on-read hourly buckets already do).
"""

from __future__ import annotations

import argparse
import time
from datetime import date

import numpy as np

from wattline.domain import buckets as B
from wattline.domain import timeutil
from wattline.domain.cost import AssetScopes, CostVersion, Scope, bucket_costs, tariff

TZ = "Asia/Kolkata"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--interval", type=int, default=60, help="seconds between readings")
    a = ap.parse_args()
    start = timeutil.local_midnight(date(2025, 1, 1), TZ)
    end = start + a.days * 86400
    ts = np.arange(start, end + 1, a.interval, dtype=np.int64)
    rng = np.random.default_rng(1)
    versions = [CostVersion(1, 7_000_000, start - 86400, currency="INR"),
                CostVersion(2, 7_500_000, start + 120 * 86400 + 14 * 3600, Scope.GROUP, 1, "INR"),
                CostVersion(3, 8_000_000, start + 250 * 86400 + 7 * 3600 + 17, Scope.ASSET, 2, "INR")]
    sid = np.repeat(np.arange(1, a.devices + 1), len(ts) - 1)
    entries = {"series_id": sid, "start_ts": np.tile(ts[:-1], a.devices), "end_ts": np.tile(ts[1:], a.devices),
               "delta": rng.integers(0, 2_000, len(sid))}
    tariffs = {d: tariff(versions, AssetScopes(d, 1, frozenset({1}))) for d in range(1, a.devices + 1)}
    print(f"{a.devices} devices x {a.days} days, one entry per {a.interval} s: {len(sid):,} ledger entries")
    totals = {}
    for period in ("day", "month", "year"):
        wanted = B.bucket_range(period, start, end, TZ)
        t0 = time.perf_counter()
        got = bucket_costs(entries, tariffs, TZ, period, wanted)
        dt = time.perf_counter() - t0
        totals[period] = sum(c.cost_micro for c in got)
        print(f"  {period:5s}: {len(wanted):4d} buckets priced in {dt:6.2f} s "
              f"({len(sid) / dt / 1e6:.2f} M entries/s)")
    assert len(set(totals.values())) == 1, totals  # days, months and the year agree exactly
    print(f"  total {totals['year'] / 1e6:,.6f} INR, the same to the micro-unit for days, months and the year")


if __name__ == "__main__":
    main()

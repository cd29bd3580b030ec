"""Late data before a long gap: the cost of re-deriving the entry that spans it.

    .venv/bin/python bench/late_data.py [--readings 25000] [--batch 5000]

One counter series (Europe/Berlin) gets ``--readings`` 15-minute readings from
2025-06-01, then as many readings from 2023-01-01 arrive late, in batches of
``--batch``. The first late batch turns the series' first stored reading into the end
of an entry spanning ~1.7 years, whose delta rule 2 splits over every local day of the
gap. Prints the time of the late ingest and the rate.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from wattline.domain.metrics import MetricType
from wattline.domain.readings import ReadingBatch
from wattline.pipeline import Pipeline
from wattline.store import registry
from wattline.store.engines import open_databases
from wattline.store.migrate import upgrade_all


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readings", type=int, default=25_000)
    ap.add_argument("--batch", type=int, default=5_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wl-late-"))
    dbs = open_databases(f"sqlite:///{tmp / 'main.db'}", f"sqlite:///{tmp / 'telemetry.db'}")
    try:
        upgrade_all(dbs.main, dbs.telemetry)
        with dbs.main.begin() as conn:
            aid = registry.add_asset(conn, "late-meter", "meter", "Europe/Berlin")
            sid = registry.ensure_points(conn, aid, [registry.PointDefinition("energy", MetricType.COUNTER)])["energy"]
        pipe = Pipeline(dbs.telemetry, dbs.main_reader)
        n = args.readings

        def batch(ts, kwh):
            return ReadingBatch(np.full(len(ts), sid), ts, kwh, np.full(len(ts), -1), [], "bench")

        pipe.ingest(batch(1_748_736_000 + np.arange(n, dtype=np.int64) * 900, 1e6 + np.arange(n) * 0.5))
        old = 1_672_531_200 + np.arange(n, dtype=np.int64) * 900  # from 2023-01-01
        t0 = time.perf_counter()
        for a in range(0, n, args.batch):
            pipe.ingest(batch(old[a:a + args.batch], 1e5 + np.arange(a, min(a + args.batch, n)) * 0.5))
        dt = time.perf_counter() - t0
        print(f"late ingest of {n:,} readings before a ~1.7-year gap (batches of {args.batch:,}): "
              f"{dt:.2f} s = {n / dt:,.0f} readings/s")
    finally:
        dbs.dispose()


if __name__ == "__main__":
    main()

"""Where a batch of device documents spends its time: the MQTT/HTTP handler's call
(``jobs.device_telemetry.ingest_documents``) in-process, profiled.

    .venv/bin/python bench/device_ingest_profile.py [--classrooms 20] [--devices 10] [--documents 10000] [--batch 500]

The simulated fleet's telemetry documents in batches of ``--batch`` (the ingester's
``--max-batch``) on fresh SQLite databases, the first batch as warm-up. Prints
documents/s and the share of the time in the registry lookup
(``store.device_resolver.RegistryDeviceResolver.resolve``: a fresh resolver per batch,
two queries per distinct device of the batch), the device stage and the pipeline.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from campus_setup import fresh_databases, register_fleet  # noqa: E402
from mqtt_ingest import fleet_messages  # noqa: E402

from wattline.jobs.device_telemetry import ingest_documents  # noqa: E402
from wattline.pipeline import Pipeline  # noqa: E402
from wattline.simulator.devices import campus_fleet  # noqa: E402

PARTS = {"registry lookup (RegistryDeviceResolver.resolve)": ("device_resolver.py", "resolve"),
         "device stage (DeviceIngest.ingest)": ("device_ingest.py", "ingest"),
         "of which the pipeline (Pipeline.ingest)": ("pipeline/ingest.py", "ingest")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classrooms", type=int, default=20)
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--documents", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=500)
    a = ap.parse_args()
    docs = [p for t, p in fleet_messages(a.classrooms, a.devices, int(a.documents * 1.3) + 100)
            if t.endswith("/telemetry")][:a.documents]
    batches = [docs[i:i + a.batch] for i in range(0, len(docs), a.batch)]
    with tempfile.TemporaryDirectory(prefix="wl-bench-prof-") as tmp:
        dbs = fresh_databases(Path(tmp), None).open()
        register_fleet(dbs, campus_fleet(a.classrooms, a.devices, 0))
        pipeline = Pipeline(dbs.telemetry, dbs.main_reader)
        ingest_documents(pipeline, dbs.main_reader, 1, batches[0], source="mqtt")
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        for b in batches[1:]:
            ingest_documents(pipeline, dbs.main_reader, 1, b, source="mqtt")
        prof.disable()
        dt = time.perf_counter() - t0
        dbs.dispose()
    n = sum(map(len, batches[1:]))
    stats = pstats.Stats(prof).stats
    total = sum(tt for (_f, _l, _n), (_cc, _nc, tt, _ct, _callers) in stats.items())
    print(f"{a.classrooms * a.devices} devices, {n} documents in {len(batches) - 1} batches of {a.batch}: "
          f"{n / dt:,.0f} documents/s under the profiler ({dt:.1f} s)")
    for label, (file_part, func) in PARTS.items():
        cum = sum(ct for (f, _l, name), (_cc, _nc, _tt, ct, _callers) in stats.items()
                  if f.endswith(file_part) and name == func)
        print(f"  {label:<52} {cum:6.2f} s  {cum / total:5.0%}")


if __name__ == "__main__":
    main()

"""Concurrent writers of the same series queue instead of corrupting the ledger."""

from __future__ import annotations

import threading

import numpy as np

from helpers import aggregate_rows, batch, ledger_rows, new_series
from wattline.pipeline import Pipeline


def test_two_writers_interleaving_the_same_series_match_one_writer(dbs):
    rng = np.random.default_rng(3)
    n = 400
    ts = 1_700_000_100 // 900 * 900 + np.arange(n) * 900
    values = np.cumsum(rng.uniform(0, 2, n))
    values[150:] -= values[150] - 1.0  # a reset in the middle
    ref, sid = new_series(dbs, tz="Europe/Berlin"), new_series(dbs, tz="Europe/Berlin")
    Pipeline(dbs.telemetry, dbs.main_reader).ingest(batch(ref, ts, values), refresh_summaries=False)

    order = rng.permutation(n)
    chunks = [order[i:i + 20] for i in range(0, n, 20)]
    errors = []

    def writer(part):
        pipe = Pipeline(dbs.telemetry, dbs.main_reader)  # like two jobs in two threads
        try:
            for c in part:
                pipe.ingest(batch(sid, ts[c], values[c]), refresh_summaries=False)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(chunks[k::2],)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert ledger_rows(dbs, sid) == ledger_rows(dbs, ref)
    assert aggregate_rows(dbs, sid) == aggregate_rows(dbs, ref)

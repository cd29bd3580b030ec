"""A consumer process for the kill -9 tests: every batch is appended to a SQLite file in
one transaction, then the consumer acknowledges it. Prints ``ready`` once subscribed.

    python consumer_proc.py URL CLIENT_ID DB RUN [--max-batch N] [--delay S]

Payloads are JSON ``{"id": ...}``; rows are (msg_id, run, batch). SIGTERM: finish the
batch, acknowledge, disconnect, exit 0.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time

from wattline.sources.mqtt import ConsumerConfig, MqttConsumer, parse_broker_url, run_until_signalled


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("client_id")
    ap.add_argument("db")
    ap.add_argument("run", type=int)
    ap.add_argument("--max-batch", type=int, default=100)
    ap.add_argument("--delay", type=float, default=0.01)
    args = ap.parse_args()

    db = sqlite3.connect(args.db, isolation_level=None, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS handled (msg_id TEXT, run INTEGER, batch INTEGER)")
    db.execute("CREATE TABLE IF NOT EXISTS rejected (msg_id TEXT, run INTEGER, reason TEXT)")
    batches = 0

    def handle(batch):
        nonlocal batches
        batches += 1
        rows = [(json.loads(m.payload)["id"], args.run, batches) for m in batch]
        time.sleep(args.delay / 2)  # work before the commit ...
        db.execute("BEGIN")
        db.executemany("INSERT INTO handled VALUES (?, ?, ?)", rows)
        db.execute("COMMIT")
        time.sleep(args.delay / 2)  # ... and between the commit and the acknowledgement

    def reject(batch, reason):
        db.execute("BEGIN")
        db.executemany("INSERT INTO rejected VALUES (?, ?, ?)",
                       [(m.payload.decode(errors="replace"), args.run, reason) for m in batch])
        db.execute("COMMIT")

    cfg = ConsumerConfig(broker=parse_broker_url(args.url), client_id=args.client_id, max_batch=args.max_batch)
    consumer = MqttConsumer(cfg, handle, reject)
    consumer.start(timeout_s=10)
    print("ready", flush=True)
    run_until_signalled(consumer)
    print(json.dumps({"handled": consumer.stats.handled, "acked": consumer.stats.acked,
                      "batches": consumer.stats.batches}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

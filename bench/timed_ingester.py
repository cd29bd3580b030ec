"""``wattline mqtt`` (the real ingester, the same command line) with one hook for the
benchmark: the instant each batch's handler returned — its transaction committed, just
before its acknowledgements go out — is appended to ``$BENCH_COMMIT_LOG`` as
``<monotonic s> <blake2b-64 of the payload>`` per message. ``time.monotonic()`` is the
system-wide CLOCK_MONOTONIC, the same clock as the publisher process's.

    python bench/timed_ingester.py --broker mqtt://127.0.0.1:PORT [--group G] [--client-id ID]
"""

from __future__ import annotations

import hashlib
import os
import sys
import time

from wattline.jobs import mqtt_ingest

_log = open(os.environ["BENCH_COMMIT_LOG"], "a", buffering=1 << 16)
_handle = mqtt_ingest.MqttIngest.handle


def _timed_handle(self, batch):
    _handle(self, batch)
    t = time.monotonic()
    _log.write("".join(f"{t:.6f} {hashlib.blake2b(m.payload, digest_size=8).hexdigest()}\n" for m in batch))
    _log.flush()


mqtt_ingest.MqttIngest.handle = _timed_handle

if __name__ == "__main__":
    from wattline.cli import app

    sys.argv = ["wattline", "mqtt", *sys.argv[1:]]
    app()

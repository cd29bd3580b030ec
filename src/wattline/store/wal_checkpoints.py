"""SQLite WAL checkpoints off the write path.

SQLite's automatic checkpoint runs inside the COMMIT that takes the WAL past 1,000
pages: that writer copies the WAL back into the database file and syncs it before its
COMMIT returns. For the pipeline, which commits a batch of many thousands of readings
at a time, that was ~10 % of its time (bench/pipeline.py). As SQLite's documentation
suggests ("Application-Initiated Checkpoints", wal.html), write connections here
checkpoint automatically only as a backstop (``BACKSTOP_PAGES``), and a background
thread with its own connection runs a PASSIVE checkpoint shortly after commits. A
PASSIVE checkpoint never blocks readers or writers; what it cannot copy yet (pages a
reader still needs) the next one copies.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

BACKSTOP_PAGES = 16_384  # ~64 MB of 4 KiB pages: only reached if the thread falls behind
JOURNAL_SIZE_LIMIT = 64 << 20  # the WAL file is cut back to this after a reset


class WalCheckpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on ``path`` after :meth:`notify`, at most
    once per ``min_interval_s`` (commits in between are copied by the same run)."""

    def __init__(self, path: str, min_interval_s: float = 0.2):
        self.path = path
        self.min_interval_s = min_interval_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def notify(self) -> None:
        """A write transaction committed (or is committing): checkpoint soon."""
        if self._stop.is_set():
            return
        if self._thread is None:
            with self._lock:
                if self._thread is None:  # started on the first write: readers never get one
                    self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
                    self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        """Run a last checkpoint and end the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # a busy or vanished database: the next run retries
            log.warning("WAL checkpoint of %s failed: %s", self.path, exc)

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            while not self._stop.is_set():
                self._wake.wait()
                # let the commit that woke us finish, and gather the ones right behind it
                self._stop.wait(self.min_interval_s)
                self._wake.clear()
                self._checkpoint(conn)
        finally:
            conn.close()

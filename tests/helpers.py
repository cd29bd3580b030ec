"""Small helpers shared by tests."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import redis

from wattline.domain.metrics import MetricType
from wattline.domain.readings import ReadingBatch
from wattline.store import registry

IN_CI = os.environ.get("CI", "").lower() == "true"
SHARED_REDIS_PORT = 6379
REDIS_CONF = Path(__file__).resolve().parent / "redis" / "test.conf"


def service_missing(what: str, exc: Exception):
    msg = f"{what} unreachable: {exc}"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)

_counter = itertools.count(1)


def new_series(dbs, metric=MetricType.COUNTER, tz="UTC", kind="meter", **point_kw) -> int:
    """A fresh asset with one point; returns the series id."""
    with dbs.main.begin() as conn:
        aid = registry.add_asset(conn, f"asset-{next(_counter)}-{np.random.randint(1e9)}", kind, tz)
        return registry.ensure_points(conn, aid, [registry.PointDefinition("energy", metric, **point_kw)])["energy"]


def batch(series_id: int, ts, values) -> ReadingBatch:
    ts = np.asarray(ts, np.int64)
    return ReadingBatch(np.full(len(ts), series_id), ts, np.asarray(values, float), np.full(len(ts), -1), [], "test")


def ledger_rows(dbs, series_id: int):
    with dbs.telemetry.connect() as c:
        return c.exec_driver_sql(
            "SELECT end_ts, start_ts, delta_milli_wh, method, flags, ref_milli_wh FROM ledger "
            f"WHERE series_id = {int(series_id)} ORDER BY end_ts").fetchall()


def aggregate_rows(dbs, series_id: int):
    with dbs.telemetry.connect() as c:
        rows = c.exec_driver_sql(
            "SELECT period, bucket_start, bucket_end, energy_milli_wh, value_min, value_max, value_count, "
            "value_last, last_ts, ledger_count, flags, split_start, split_end FROM aggregates "
            f"WHERE series_id = {int(series_id)} ORDER BY period, bucket_start").fetchall()
    # PostgreSQL returns BIGINT sums as int and booleans as bool; normalise for comparison
    return [tuple(bool(v) if i >= 11 else (int(v) if i == 3 and v is not None else v) for i, v in enumerate(r))
            for r in rows]


def energy_by_period(dbs, series_id: int) -> dict[str, int]:
    """Total energy per period: the stored periods, plus the ones computed on read."""
    from wattline.store.fine_buckets import ON_READ_PERIODS, fixed_on_read

    with dbs.telemetry.connect() as c:
        out = {p: int(s or 0) for p, s in c.exec_driver_sql(
            "SELECT period, SUM(energy_milli_wh) FROM aggregates "
            f"WHERE series_id = {int(series_id)} GROUP BY period")}
        lo, hi = c.exec_driver_sql(
            f"SELECT MIN(start_ts), MAX(end_ts) FROM ledger WHERE series_id = {int(series_id)}").one()
        if lo is not None:
            tz = c.exec_driver_sql(f"SELECT timezone FROM series_info WHERE series_id = {int(series_id)}").scalar()
            for period in ON_READ_PERIODS:
                out[period] = int(fixed_on_read(c, series_id, period, lo, hi, tz)["energy"].sum())
    return out


def ledger_total(dbs, series_id: int) -> int:
    with dbs.telemetry.connect() as c:
        return int(c.exec_driver_sql(
            f"SELECT COALESCE(SUM(delta_milli_wh), 0) FROM ledger WHERE series_id = {int(series_id)}").scalar())


def shared_dir() -> Path:
    """The team's shared folder (vendor fixtures, seeds): $WATTLINE_SHARED, the folder
    beside this checkout, or /work/shared — whichever has the vendor fixtures."""
    beside = Path(__file__).resolve().parents[1].parent / "shared"
    for c in (os.environ.get("WATTLINE_SHARED"), beside, "/work/shared"):
        if c and (Path(c) / "vendor-fixtures").is_dir():
            return Path(c)
    return beside


def session_headers(key: bytes, cookie: str) -> dict[str, str]:
    """Headers of a signed-in browser: the session cookie and its CSRF token, which every
    state-changing request with the cookie must carry (wattline.security.csrf)."""
    from wattline.security import csrf
    from wattline.security.sessions import COOKIE_NAME

    return {"Cookie": f"{COOKIE_NAME}={cookie}", csrf.HEADER: csrf.token_for(key, cookie)}


def sign_in_client(client, key: bytes, cookie: str) -> None:
    """Make ``client`` (TestClient / httpx.Client) a signed-in browser: the session cookie,
    and its CSRF token as a default header."""
    from wattline.security import csrf
    from wattline.security.sessions import COOKIE_NAME

    client.cookies.set(COOKIE_NAME, cookie)
    client.headers[csrf.HEADER] = csrf.token_for(key, cookie)

class RedisServer:
    """``redis-server`` on a free loopback port with tests/redis/test.conf (no
    persistence); stop() ends it (only this process, by its handle)."""

    def __init__(self):
        exe = shutil.which("redis-server")
        if exe is None:
            service_missing("redis-server", FileNotFoundError("redis-server not on PATH"))
        self.exe = exe
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        assert self.port != SHARED_REDIS_PORT
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, str(REDIS_CONF), "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("test redis-server did not start") from None
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


def queue_rows(url: str, sql: str, **params) -> list:
    """Rows of one query on a database by URL (the job engine's queue), on a throw-away engine."""
    import sqlalchemy as sa

    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            return c.execute(sa.text(sql), params).all()
    finally:
        eng.dispose()


def queue_exec(url: str, sql: str) -> None:
    """One statement, committed, on a database by URL."""
    import sqlalchemy as sa

    eng = sa.create_engine(url)
    try:
        with eng.begin() as c:
            c.execute(sa.text(sql))
    finally:
        eng.dispose()


def make_sqlite(directory):
    """A migrated main + telemetry pair of SQLite files in ``directory``."""
    from wattline.store.engines import open_databases
    from wattline.store.migrate import upgrade_all

    dbs = open_databases(f"sqlite:///{directory / 'main.db'}", f"sqlite:///{directory / 'telemetry.db'}")
    upgrade_all(dbs.main, dbs.telemetry)
    return dbs

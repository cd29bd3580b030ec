"""Shared fixtures: fresh database pairs on SQLite and PostgreSQL; the clock.

With CI=true a test whose service is unreachable fails instead of skipping.

Every "now" comes from ``wattline.clock``. Run the suite at another instant with
``WATTLINE_CLOCK=2026-12-01T23:30:00Z`` in the environment or ``--clock
2026-12-01T23:30:00Z``; the clock starts there for the session (and for the child
processes it starts) and the header of the run says where. A test that moves the
clock takes the ``set_clock`` fixture, which puts the session's clock back after it.
"""

from __future__ import annotations

import os
import time
import uuid

import pytest
from sqlalchemy import create_engine, text

from wattline import clock
from wattline.domain import timeutil
from mqtt_broker import mqtt_broker  # noqa: F401 - the test-owned Mosquitto fixture (tests/mqtt_broker.py)
from helpers import IN_CI, RedisServer, make_sqlite, service_missing  # noqa: F401 - shared with test modules
from wattline.pipeline import Pipeline
from wattline.store.engines import open_databases
from wattline.store.migrate import upgrade_all

# fails the run if any log line, response, page or output of the suite shows a secret
pytest_plugins = ["secret_watch"]

PG_ADMIN_URL = os.environ.get("WATTLINE_TEST_PG", "postgresql+psycopg://root@127.0.0.1:5432/test")


def pytest_addoption(parser):
    parser.addoption("--clock", default=None, metavar="INSTANT",
                     help="start wattline.clock at this ISO-8601 instant (with Z or an offset) for the "
                          "session; the same as WATTLINE_CLOCK=INSTANT")


def pytest_configure(config):
    instant = config.getoption("--clock")
    if instant:
        os.environ.pop("WATTLINE_CLOCK_OFFSET_S", None)
        os.environ["WATTLINE_CLOCK"] = instant
        clock.set_now(timeutil.parse_instant(instant))
    else:
        clock.now()  # turn WATTLINE_CLOCK into the offset now, before any child process starts


def pytest_collection_modifyitems(session, config, items):
    """Every test its own node id. schemathesis gives each operation's test the node id of
    the function (the operation is only in its name); pytest-xdist's ``--dist loadfile``
    keys the work by node id, so all but one operation went untested. A duplicate left
    is an error, never a silently skipped test."""
    for item in items:
        label = getattr(item, "operation_label", None)  # a schemathesis operation's test
        if label and not item.nodeid.endswith("]"):
            if hasattr(item, "_id"):  # pytest 9: a structured node id
                item._id = item._id.with_params(label)
            else:
                item._nodeid = f"{item.nodeid}[{label}]"
    seen: set[str] = set()
    twice = {i.nodeid for i in items if i.nodeid in seen or seen.add(i.nodeid)}
    if twice:
        raise pytest.UsageError(f"tests with the same node id (xdist would run one): {sorted(twice)[:5]}")


def pytest_report_header(config):
    offset = clock.now() - time.time()
    return f"wattline clock: {clock.now_dt().isoformat(timespec='seconds')}" + (
        "" if abs(offset) < 1 else f" (offset {offset:+.0f} s from real time)")


@pytest.fixture
def redis_server():
    """A redis-server of the test's own (tests/redis/test.conf, no persistence, a free
    port: never the shared one on 6379); stop()/start() it to play an outage."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def set_clock():
    """``set_clock(instant)`` moves the clock (datetime or epoch s); restored after the test."""
    offset = clock.now() - time.time()
    yield clock.set_now
    clock.set_now(time.time() + offset)


class PgDatabases:
    """Creates throw-away databases on the local PostgreSQL server."""

    def __init__(self):
        self.admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def url(self, name: str) -> str:
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        return f"{base}/{name}"

    def create(self, template: str | None = None) -> str:
        name = f"wl_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as c:
            c.execute(text(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else "")))
        self.created.append(name)
        return name

    def drop_all(self) -> None:
        with self.admin.connect() as c:
            for name in self.created:
                c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        self.admin.dispose()


@pytest.fixture(scope="session")
def pg_templates():
    """A migrated (main, telemetry) pair used as CREATE DATABASE templates."""
    try:
        pg = PgDatabases()
        with pg.admin.connect() as c:
            c.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        service_missing("PostgreSQL", exc)
    main, tel = pg.create(), pg.create()
    dbs = open_databases(pg.url(main), pg.url(tel))
    upgrade_all(dbs.main, dbs.telemetry)
    dbs.dispose()
    yield pg, main, tel
    pg.drop_all()


def make_pg(pg_templates):
    pg, main_t, tel_t = pg_templates
    main, tel = pg.create(main_t), pg.create(tel_t)
    return open_databases(pg.url(main), pg.url(tel))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def dbs(request, tmp_path):
    """Fresh, migrated database pair on each backend."""
    if request.param == "sqlite":
        d = make_sqlite(tmp_path)
    else:
        d = make_pg(request.getfixturevalue("pg_templates"))
    yield d
    d.dispose()


@pytest.fixture
def another_dbs(request, dbs, tmp_path):
    """A second fresh, migrated database pair on the backend of ``dbs`` (to compare two runs)."""
    if dbs.telemetry.dialect.name == "sqlite":
        (tmp_path / "another").mkdir()
        d = make_sqlite(tmp_path / "another")
    else:
        d = make_pg(request.getfixturevalue("pg_templates"))
    yield d
    d.dispose()


@pytest.fixture
def sqlite_dbs(tmp_path):
    d = make_sqlite(tmp_path)
    yield d
    d.dispose()


@pytest.fixture
def pipeline(dbs):
    return Pipeline(dbs.telemetry, dbs.main_reader)


@pytest.fixture
def pg_or_sqlite_pair(request, tmp_path):
    """A second, independent database pair on the same backend as ``dbs``."""
    backend = request.node.callspec.params.get("dbs", "sqlite")
    if backend == "sqlite":
        d = make_sqlite(tmp_path / "second")
    else:
        d = make_pg(request.getfixturevalue("pg_templates"))
    yield d
    d.dispose()

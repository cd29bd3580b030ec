"""Shared by the campus benchmarks: fresh databases, a registered fleet, the documents.

Databases: the main database is SQLite in the run's temporary directory; the
telemetry database is SQLite there too, or, with ``--telemetry-url
postgresql+psycopg://root@127.0.0.1:5432/bench_mqtt``, a PostgreSQL database of that
name **dropped and created again** for each measured configuration (so the name must
start with ``bench_``: a benchmark never touches anybody else's database).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from wattline import provisioning
from wattline.simulator.devices import DeviceFleet
from wattline.store import device_registry
from wattline.store.engines import open_databases
from wattline.store.migrate import upgrade_all

TZ = "Asia/Kolkata"
SECRET = base64.b64encode(b"b" * 32).decode()


@dataclass
class BenchDatabases:
    data_dir: Path
    main_url: str
    telemetry_url: str

    @property
    def backend(self) -> str:
        return "postgresql" if self.telemetry_url.startswith("postgresql") else "sqlite"

    def env(self) -> dict:
        """Environment of a ``wattline`` subprocess on these databases."""
        return {**os.environ, "WATTLINE_SECRET_KEY": SECRET, "WATTLINE_DATA_DIR": str(self.data_dir),
                "WATTLINE_MAIN_URL": self.main_url, "WATTLINE_TELEMETRY_URL": self.telemetry_url,
                "WATTLINE_LOG_LEVEL": "WARNING"}

    def open(self):
        return open_databases(self.main_url, self.telemetry_url)


def fresh_databases(workdir: Path, telemetry_url: str | None) -> BenchDatabases:
    """Migrated, empty databases in ``workdir`` (a new directory) / at ``telemetry_url``."""
    workdir.mkdir(parents=True, exist_ok=True)
    main_url = f"sqlite:///{workdir / 'main.db'}"
    if telemetry_url:
        url = make_url(telemetry_url)
        name = url.database or ""
        if not name.startswith("bench_"):
            raise SystemExit(f"--telemetry-url: the database name must start with bench_ (it is dropped), not {name!r}")
        admin = create_engine(url.set(database="test"),
                              isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            c.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    else:
        telemetry_url = f"sqlite:///{workdir / 'telemetry.db'}"
    dbs = open_databases(main_url, telemetry_url)
    upgrade_all(dbs.main, dbs.telemetry)
    dbs.dispose()
    return BenchDatabases(workdir, main_url, telemetry_url)


def drop_database(telemetry_url: str | None) -> None:
    if not telemetry_url:
        return
    url = make_url(telemetry_url)
    admin = create_engine(url.set(database="test"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    admin.dispose()


def register_fleet(dbs, fleet: DeviceFleet) -> dict[int, tuple[str, str]]:
    """Every classroom and device of ``fleet`` (counter devices); energy_total series id -> (esp32, device)."""
    out = {}
    with dbs.main.begin() as conn:
        for c in fleet.controllers:
            provisioning.add_classroom(conn, c.classroom, TZ)
            for d in c.devices:
                provisioning.add_device(conn, c.esp32_name, d.device_id, c.classroom, switch=d.switch)
        for c in fleet.controllers:
            for d in c.devices:
                sid = device_registry.device(conn, 1, c.esp32_name, d.device_id)["series"]["energy_total"]
                out[int(sid)] = (c.esp32_name, d.device_id)
    return out


def stored_readings(dbs, series: dict[int, tuple[str, str]]) -> tuple[set, int]:
    """The (esp32, device, ts) of the energy readings stored, and their row count."""
    ids = ",".join(str(s) for s in series)
    with dbs.telemetry.connect() as c:
        rows = c.exec_driver_sql(f"SELECT series_id, ts FROM readings WHERE series_id IN ({ids})").all()
    return {(*series[int(s)], int(t)) for s, t in rows}, len(rows)


def readings_without_entry(dbs, series: dict[int, tuple[str, str]]) -> int:
    """Energy readings other than each series' first without a ledger entry ending at
    them (0 when every reading is in the ledger)."""
    ids = ",".join(str(s) for s in series)
    with dbs.telemetry.connect() as c:
        readings, with_data = c.exec_driver_sql(
            f"SELECT COUNT(*), COUNT(DISTINCT series_id) FROM readings WHERE series_id IN ({ids})").one()
        entries = c.exec_driver_sql(f"SELECT COUNT(*) FROM ledger WHERE series_id IN ({ids})").scalar()
    return int(readings) - int(with_data) - int(entries)

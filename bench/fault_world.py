"""The fault suite's world: one set of databases in the suite's own PostgreSQL with the
plants, systems and devices of the workload, the reference run in one process, and the
comparison of two worlds (see ``bench/faults.py``)."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from helpers import queue_rows
from test_mqtt_faults import FAULTS, START, FleetRun, Published, register_fleet
from world import CLOUD_NOW, WorldPlant, env_for, make_ctx, set_up
from wattline import system_admin
from wattline.jobs.backfill import backfill_plant
from wattline.jobs.device_telemetry import ingest_documents
from wattline.jobs.poll import poll_once
from wattline.jobs.sync import sync_all
from wattline.provisioning import organization_named
from wattline.security.users import create_user
from wattline.simulator.devices import DeviceFleetSimulator, campus_fleet, encode
from wattline.simulator.device_publisher import run_fleet
from wattline.simulator.vendor_cloud.config import DEFAULT_CREDENTIALS
from wattline.store import cost_versions_repo
from wattline.store.engines import open_databases
from wattline.store.migrate import upgrade_all

VENDORS = ("solarman", "sungrow")
ZONES = ("Europe/Berlin", "UTC", "Australia/Sydney")
UNLIMITED = {"calls_per_minute": None, "calls_per_day": None, "calls_per_month": None}
RATE_MICRO_PER_KWH = 7_500_000  # 7.50 per kWh, from before the fleet's first reading
OWNER = "fleet-owner"


class PausableFleetRun(FleetRun):
    """The fleet's stream in stages; :meth:`pause` returns once the publisher has finished
    the current stage and waits at the next gate (nothing is being published)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.waiting = [threading.Event() for _ in self.gates]
        for gate, waiting in zip(self.gates, self.waiting):
            original = gate.wait

            def wait(timeout=None, _original=original, _waiting=waiting):
                _waiting.set()
                return _original(timeout)
            gate.wait = wait

    def pause(self, timeout_s: float = 120) -> bool:
        """True once paused at a gate; False if every gate is already open."""
        for gate, waiting in zip(self.gates, self.waiting):
            if not gate.is_set():
                return waiting.wait(timeout_s)
        return False


class FleetWorld:
    """The device fleet of the workload: seeded, so both runs see the same messages."""

    def __init__(self, controllers: int, devices: int, sim_s: int, speed: float, seed: int):
        self.controllers, self.devices, self.sim_s, self.speed, self.seed = controllers, devices, sim_s, speed, seed

    def fleet(self):
        return campus_fleet(self.controllers, self.devices, seed=self.seed % 1000, faults=FAULTS)

    def publish(self, port: int, stages: int) -> "PausableFleetRun":
        return PausableFleetRun(self.fleet(), port, sim_s=self.sim_s, speed=self.speed, stages=stages)

    def documents(self) -> list[bytes]:
        """Every telemetry payload the fleet publishes, as the bytes it publishes, in order."""
        out: list[bytes] = []
        sim = DeviceFleetSimulator(self.fleet(), START)

        def sink(events):
            out.extend(encode(e.payload) for e in events if e.kind == "telemetry")

        run_fleet(None, sim, speed=0, until_ts=START + self.sim_s, stop=threading.Event(), sink=sink)
        return out

    def stored_count(self, world: "World") -> int:
        ids = ",".join(str(int(s)) for s in world.device_series.values()) or "0"
        with world.ctx.dbs.telemetry.connect() as c:
            return c.exec_driver_sql(f"SELECT COUNT(*) FROM readings WHERE series_id IN ({ids})").scalar()


class World:
    def __init__(self, pg, name: str, work: Path, cloud, plants: list[WorldPlant], systems: list[WorldPlant],
                 fleet: FleetWorld, calls_per_minute: int | None = None):
        self.name, self.cloud, self.plants, self.systems, self.fleet = name, cloud, plants, systems, fleet
        dbs = open_databases(pg.create_db(f"{name}_main"), pg.create_db(f"{name}_telemetry"))
        upgrade_all(dbs.main, dbs.telemetry)
        self.ctx = make_ctx(dbs, work / name)
        set_up(self.ctx, cloud.base_url, plants)
        self.calls_per_minute = calls_per_minute
        if calls_per_minute:  # the plants' vendor accounts (one per vendor), shared by every worker
            with dbs.main.begin() as conn:
                conn.execute(sa.text("UPDATE vendor_accounts SET rate_limits = :limits WHERE name LIKE '% test'"),
                             {"limits": json.dumps({"calls_per_minute": calls_per_minute, "calls_per_day": None,
                                                    "calls_per_month": None})})
        self.plant_ids = [p.plant_id for p in plants]
        with dbs.main.begin() as conn:
            create_user(conn, OWNER, "a long fleet owner password", "admin")
            self.system_ids = [
                system_admin.add_system(conn, self.ctx.settings, f"system {k}", s.vendor, s.vendor_plant_id, OWNER,
                                        timezone=s.timezone, base_url=cloud.base_url, alias=f"sys{k}",
                                        credentials=DEFAULT_CREDENTIALS[s.vendor], rate_limits=UNLIMITED)
                for k, s in enumerate(systems)]
        self.device_series = register_fleet(self.ctx, fleet.fleet())
        with dbs.main.begin() as conn:
            cost_versions_repo.add(conn, rate_micro_per_kwh=RATE_MICRO_PER_KWH, effective_from=START - 86400,
                                   ref=cost_versions_repo.resolve_scope(conn), currency="INR", notes=None,
                                   created_by="faults")

    @staticmethod
    def plants_for(n: int, history_days: int) -> list[WorldPlant]:
        return [WorldPlant(500 + k, VENDORS[k % 2], f"6600{k:04d}", ZONES[k % 3], CLOUD_NOW - history_days * 86400)
                for k in range(n)]

    @staticmethod
    def systems_for(n: int) -> list[WorldPlant]:
        return [WorldPlant(0, VENDORS[k % 2], f"7700{k:04d}", ZONES[k % 3], CLOUD_NOW - 86400) for k in range(n)]

    def env(self) -> dict:
        return env_for(self.ctx)

    # ---------------------------------------------------------------- reference

    def run_in_process(self) -> None:
        """The workload in this process, no engine, no broker, no faults."""
        ctx = self.ctx

        async def jobs():
            for pid in self.plant_ids:
                assert (await backfill_plant(ctx, pid)).success, pid
            await sync_all(ctx)
            report = await poll_once(ctx, cause="CRON")
            assert not report.to_dict()["failed"], report.to_dict()
        asyncio.run(jobs())
        with ctx.dbs.main_reader.connect() as conn:
            org = organization_named(conn, None)
        docs = self.fleet.documents()
        for k in range(0, len(docs), 100):
            result, errors = ingest_documents(ctx.pipeline, ctx.dbs.main_reader, org, docs[k:k + 100],
                                              source="mqtt", main=ctx.dbs.main)
            assert not errors, errors

    # ---------------------------------------------------------------- queries

    def query(self, sql: str, db: str = "telemetry") -> list[tuple]:
        engine = getattr(self.ctx.dbs, db)
        with engine.connect() as c:
            return [tuple(float(v) if hasattr(v, "as_tuple") else v for v in r) for r in c.exec_driver_sql(sql)]

    @staticmethod
    def engine_jobs_open(queue_url: str, task: str) -> int:
        return queue_rows(queue_url, "SELECT count(*) FROM procrastinate_jobs WHERE task_name = :t "
                                     "AND status IN ('todo', 'doing')", t=task)[0][0]

    def systems_without_success(self) -> list[int]:
        ok = {r[0] for r in self.query("SELECT DISTINCT system_id FROM sessions WHERE success")}
        return [s for s in self.system_ids if s not in ok]

    def classroom_days(self) -> list[tuple]:
        """Every classroom's devices per local day, energy and cost, as the CSV export gives them."""
        from fastapi.testclient import TestClient

        from wattline.api.app import create_app
        from wattline.security.sessions import COOKIE_NAME, issue_session
        from wattline.security.users import get_user_principal

        with self.ctx.dbs.main.begin() as conn:
            cookie = issue_session(self.ctx.settings.encryption_key, get_user_principal(conn, OWNER))
            rooms = [r[0] for r in conn.exec_driver_sql("SELECT name FROM groups WHERE kind = 'classroom' ORDER BY 1")]
        first = datetime.fromtimestamp(START - 86400, timezone.utc).date()
        last = datetime.fromtimestamp(START + self.fleet.sim_s + 86400, timezone.utc).date()
        out = []
        with TestClient(create_app(self.ctx)) as client:
            for room in rooms:
                r = client.get("/api/power-analytics/export-csv", cookies={COOKIE_NAME: cookie},
                               params={"classroom": room, "start": first.isoformat(), "end": last.isoformat()})
                assert r.status_code == 200, (room, r.status_code, r.text[:300])
                out.extend((room, line) for line in r.text.splitlines()[1:])
        return out

    # ---------------------------------------------------------------- comparison

    TABLES = {
        "readings": ("SELECT series_id, ts, value FROM readings", 2),
        "ledger entries": ("SELECT series_id, end_ts, start_ts, delta_milli_wh, flags FROM ledger", 2),
        "aggregates": ("SELECT series_id, period, bucket_start, energy_milli_wh, value_count, flags, on_time_s, "
                       "hc_energy_milli_wh FROM aggregates", 3),
        "plant summaries": ("SELECT plant_id, daily_energy_kwh, monthly_energy_mwh, yearly_energy_mwh, "
                            "total_energy_mwh, current_power_kw FROM plant_aggregates", 1),
        "raw payloads (ids)": ("SELECT id FROM raw_events", 1),
    }

    def compare(self, reference: "World", published: Published, queue_url: str, vendor_faults: int,
                unlogged_allowance: int = 0) -> dict:
        problems: list[str] = []
        tables = {}
        for name, (sql, key_len) in self.TABLES.items():
            mine = {r[:key_len]: r[key_len:] for r in self.query(sql)}
            theirs = {r[:key_len]: r[key_len:] for r in reference.query(sql)}
            if name == "readings":
                n_rows = len(self.query(sql))
                if n_rows != len(mine):
                    problems.append(f"readings: {n_rows - len(mine)} rows repeat a key")
            lost = len(theirs.keys() - mine.keys())
            extra = len(mine.keys() - theirs.keys())
            changed = sum(1 for k in mine.keys() & theirs.keys() if mine[k] != theirs[k])
            tables[name] = (lost, extra, changed)
            if name == "raw payloads (ids)":
                # failed calls are kept too (the response as it arrived), so the faulted run may
                # hold more; every payload of the reference must be there
                if lost:
                    problems.append(f"{name}: {lost} of the reference's missing")
                continue
            if lost or extra or changed:
                problems.append(f"{name}: {lost} lost, {extra} extra, {changed} changed")
        mine, theirs = self.classroom_days(), reference.classroom_days()
        lost, extra = len(set(theirs) - set(mine)), len(set(mine) - set(theirs))
        tables["classroom days (cost)"] = (lost, extra, 0)
        if lost or extra or not theirs:
            problems.append(f"classroom days: {lost} lost, {extra} different (of {len(theirs)})")
        # the devices against what was published, not only against the reference
        stored = {(k, ts) for k, sid in self.device_series.items()
                  for (ts,) in self.query(f"SELECT ts FROM readings WHERE series_id = {int(sid)}")}
        sent = {(k, ts) for k, rs in published.readings.items() for ts in rs}
        tables["device readings (sent)"] = (len(sent - stored), len(stored - sent), 0)
        if sent != stored:
            problems.append(f"device readings: {len(sent - stored)} lost, {len(stored - sent)} never sent")
        unpolled = self.systems_without_success()
        if unpolled:
            problems.append(f"systems never polled successfully: {unpolled}")
        periodic_twice = self._periodic_twice(queue_url)
        if periodic_twice:
            problems.append(f"periodic jobs deferred twice for one period: {periodic_twice}")
        failed_sessions = self.query("SELECT count(*) FROM sessions WHERE NOT success AND error IS NOT NULL")[0][0]
        silent_sessions = self.query("SELECT count(*) FROM sessions WHERE NOT success AND error IS NULL")[0][0]
        failed_logs = self.query("SELECT count(*) FROM vendor_sync_logs WHERE status <> 'success'")[0][0]
        silent_logs = self.query("SELECT count(*) FROM vendor_sync_logs WHERE status = 'error' "
                                 "AND error_message IS NULL")[0][0]
        # each failed call leaves its record, but a worker killed between a failed call and
        # its log write loses that record (the job is retried): at most its running calls
        if failed_sessions + failed_logs < vendor_faults - unlogged_allowance:
            problems.append(f"{vendor_faults} vendor faults served but only {failed_sessions} failed sessions "
                            f"and {failed_logs} failed sync logs on record")
        if silent_sessions or silent_logs:
            problems.append(f"failures without their error: {silent_sessions} sessions, {silent_logs} sync logs")
        busiest = self.busiest_minute()
        if self.calls_per_minute and any(n > self.calls_per_minute for n in busiest.values()):
            problems.append(f"an account's limit of {self.calls_per_minute} calls a minute was exceeded: {busiest}")
        events = self._job_events(queue_url)
        return {"tables": tables, "problems": problems, "periodic_twice": periodic_twice,
                "readings": len(self.query("SELECT 1 FROM readings")),
                "busiest_minute": busiest,
                "poll_sessions": self.query("SELECT count(*) FROM sessions")[0][0],
                "failed_sessions": failed_sessions, "failed_sync_logs": failed_logs,
                "retried_jobs": events.get("deferred_for_retry", 0), "failed_jobs": events.get("failed", 0),
                "superseded_jobs": events.get("aborted", 0)}

    def busiest_minute(self) -> dict[str, int]:
        """Per vendor account of the plants: the most calls the cloud answered for its plants
        in any 59 s (the limiter counts a sliding minute at the caller; 1 s for the transit)."""
        ours = {p.vendor_plant_id for p in self.plants}
        out = {}
        for vendor in sorted({p.vendor for p in self.plants}):
            times = sorted(c.at for c in self.cloud.state.stats.calls if c.vendor == vendor and c.plant_id in ours)
            j, best = 0, 0
            for i, t in enumerate(times):
                while times[j] < t - 59:
                    j += 1
                best = max(best, i - j + 1)
            out[vendor] = best
        return out

    @staticmethod
    def _periodic_twice(queue_url: str) -> list[tuple]:
        return [tuple(r) for r in queue_rows(
            queue_url, "SELECT task_name, args->>'timestamp', count(*) FROM procrastinate_jobs "
                       "WHERE args ? 'timestamp' GROUP BY 1, 2 HAVING count(*) > 1")]

    @staticmethod
    def _job_events(queue_url: str) -> dict:
        return {k: n for k, n in queue_rows(
            queue_url, "SELECT type::text, count(*) FROM procrastinate_events GROUP BY 1")}

"""The campus of ``wattline demo``: classrooms of metered devices fed by the simulated fleet.

Sets up the organization ``Demo Campus`` (Asia/Kolkata) with classrooms CR-101 … CR-103,
four devices each (lights and fans of ``simulator/devices.py``, each on its own switch,
measured by their counters), a cost version of 8.50 INR/kWh for the organization, then
feeds it the fleet's messages from local midnight the day before the first run up to
now, faults included (firmware resets, offline spells with a burst of buffered messages
on return, repeats, out-of-order messages, clock drift):

* with ``WATTLINE_MQTT_URL`` set, through Mosquitto: the fleet publishes as the
  controllers do (``simulator/device_publisher.py``) and the ingester of ``wattline mqtt``
  (``jobs.mqtt_ingest.MqttIngest`` on an in-process consumer) takes them in, until every
  published telemetry message is committed;
* otherwise through the HTTP ingest path without a server: the documents are validated
  and handed to :func:`~wattline.jobs.device_telemetry.ingest_payloads`, the function
  ``POST /api/power-analytics/telemetry`` calls, so the embedded default needs no service.

Readings come every 5 minutes (the seed's controllers send every 30 s; 5 minutes keeps the
demo's start a matter of seconds and stays below the 10-minute gap). Running the demo again
resumes: the stream is the same (the fleet's start is kept as its devices' start of
operation), the last hour is sent again and recognised as repeats, and only what the fleet
measured since the previous run is new.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, replace

from rich.console import Console
from rich.table import Table

from wattline import clock, provisioning
from wattline.context import AppContext
from wattline.domain import timeutil
from wattline.domain.cost import rate_micro_per_kwh
from wattline.domain.devices import ENERGY_TOTAL
from wattline.jobs.device_telemetry import ingest_payloads
from wattline.simulator.devices import DeviceFleet, DeviceFleetSimulator, FleetEvent, campus_fleet
from wattline.sources.devices import parse_documents
from wattline.store import cost_versions_repo, demo_setup_repo, device_registry, queries, registry
from wattline.store.engines import write_transaction

ORG = "Demo Campus"
TIMEZONE = "Asia/Kolkata"
CLASSROOMS, DEVICES, SEED = 3, 4, 0
INTERVAL_S = 300  # s between a device's readings
DAYS_BEFORE = 1  # the first run feeds from local midnight this many days back
RATE, CURRENCY = "8.50", "INR"
RESUME_MARGIN_S = 3600  # a re-run sends this much again (repeats): buffered bursts come late
MAX_BACKLOG_S = 2 * 86400  # a re-run after a long pause sends at most this much
CHUNK = 5000  # documents per pipeline call
MQTT_PREFIX = "autovolt"
MQTT_WAIT_S = 120.0  # for the ingester to commit what was published
MQTT_CONNECT_S = 15.0  # for the broker to take the ingester's subscription (else: the HTTP path)
PUBLISH_AHEAD = 400  # telemetry messages published before waiting for the ingester


def fleet() -> DeviceFleet:
    return replace(campus_fleet(CLASSROOMS, DEVICES, SEED, interval_s=INTERVAL_S), heartbeat_s=60)


@dataclass
class Campus:
    organization_id: int
    start_ts: int  # the fleet's simulated start, UTC epoch s
    series: dict[str, list[int]]  # classroom -> energy series of its devices
    devices: int


@dataclass
class FeedResult:
    path: str  # "mqtt" or "http"
    telemetry: int = 0  # telemetry messages sent this run
    accepted: int = 0
    repeats: int = 0
    kept: int = 0  # quarantined or unknown device
    committed: int = 0  # MQTT: distinct published telemetry messages the ingester committed
    seconds: float = 0.0

    def describe(self) -> str:
        if self.path == "mqtt":
            return (f"fed through Mosquitto: {self.telemetry} telemetry messages published, {self.committed} distinct "
                    f"ones committed by the ingester in {self.seconds:.1f} s")
        return (f"fed through the HTTP ingest path: {self.telemetry} messages, {self.accepted} new, "
                f"{self.repeats} repeats" + (f", {self.kept} kept out" if self.kept else "")
                + f" in {self.seconds:.1f} s")


def set_up(ctx: AppContext, now: int | None = None) -> Campus:
    """Idempotent: the organization, classrooms, devices and cost version that are missing."""
    f = fleet()
    now = clock.now_s() if now is None else now
    first_start = timeutil.day_bounds(timeutil.local_date(now, TIMEZONE), TIMEZONE)[0] - DAYS_BEFORE * 86400
    with write_transaction(ctx.dbs.main) as conn:  # a second demo waits here, see demo.set_up
        org = registry.ensure_organization(conn, ORG, TIMEZONE)
        rooms = {r["name"] for r in provisioning.classrooms(conn, org)}
        start = None
        for c in f.controllers:
            for d in c.devices:
                row = device_registry.device(conn, org, c.esp32_name, d.device_id)
                if row is not None:
                    s = registry.asset_by_id(conn, row["asset_id"])["start_operating_time"]
                    start = s if start is None or (s is not None and s < start) else start
        start = first_start if start is None else start
        series: dict[str, list[int]] = {}
        for c in f.controllers:
            if c.classroom not in rooms:
                provisioning.add_classroom(conn, c.classroom, organization_id=org)  # the organization's zone
            for d in c.devices:
                if device_registry.device_asset_id(conn, org, c.esp32_name, d.device_id) is None:
                    aid = provisioning.add_device(conn, c.esp32_name, d.device_id, c.classroom, switch=d.switch,
                                                  method="counter", organization_id=org)
                    # the fleet's start, kept so that a re-run replays the same stream
                    registry.update_asset(conn, aid, start_operating_time=start)
                row = device_registry.device(conn, org, c.esp32_name, d.device_id)
                series.setdefault(c.classroom, []).append(row["series"][ENERGY_TOTAL])
        cost_versions_repo.add(conn, rate_micro_per_kwh=rate_micro_per_kwh(RATE), effective_from=start,
                               ref=cost_versions_repo.ScopeRef("organization", org, ORG), currency=CURRENCY,
                               notes="demo campus rate", created_by="wattline demo")
    return Campus(org, int(start), series, f.device_count)


def _events(ctx: AppContext, campus: Campus, now: int) -> tuple[list[FleetEvent], set[str], int]:
    """The fleet's events to send: (events from the resume point on, controllers online
    at that point, the resume instant)."""
    with ctx.dbs.telemetry.connect() as conn:
        newest = demo_setup_repo.newest_reading_ts(conn, [s for ids in campus.series.values() for s in ids])
    resume = campus.start_ts if newest is None else max(campus.start_ts, newest - RESUME_MARGIN_S)
    # after a long pause, not all of it: the counters span the pause (one gap entry each)
    resume = max(resume, now - MAX_BACKLOG_S)
    sim = DeviceFleetSimulator(fleet(), campus.start_ts)
    events = sim.advance(now)
    online: set[str] = set()
    out = []
    for ev in events:
        if ev.at >= resume:
            out.append(ev)
        elif ev.kind == "connect":
            online.add(ev.esp32_name)
        elif ev.kind == "disconnect":
            online.discard(ev.esp32_name)
    return out, online, resume


def feed(ctx: AppContext, campus: Campus, *, mqtt_url: str | None = None, now: int | None = None) -> FeedResult:
    """Send the fleet's messages up to ``now`` (default: the clock) that the ledger may
    not have yet, through Mosquitto (``mqtt_url``) or the HTTP ingest path."""
    now = clock.now_s() if now is None else now
    events, online, _ = _events(ctx, campus, now)
    began = time.monotonic()
    result = _feed_mqtt(ctx, campus, events, online, mqtt_url) if mqtt_url else _feed_http(ctx, campus, events)
    result.seconds = time.monotonic() - began
    return result


def _feed_http(ctx: AppContext, campus: Campus, events: list[FleetEvent]) -> FeedResult:
    docs = [ev.payload for ev in events if ev.kind == "telemetry"]
    out = FeedResult("http", telemetry=len(docs))
    for a in range(0, len(docs), CHUNK):
        part = docs[a:a + CHUNK]
        payloads, errors = parse_documents(part)  # the route's validation: all or nothing
        if errors:
            raise ValueError(f"the simulated fleet sent an invalid document: {errors[0].message}")
        r = ingest_payloads(ctx.pipeline, ctx.dbs.main_reader, campus.organization_id, payloads, part,
                            source="http")
        out.accepted += r.accepted
        out.repeats += r.repeats
        out.kept += r.quarantined + r.unknown_device
    return out


def _feed_mqtt(ctx: AppContext, campus: Campus, events: list[FleetEvent], online: set[str],
               url: str) -> FeedResult:
    from wattline.jobs.mqtt_ingest import MqttIngest
    from wattline.simulator.device_publisher import DevicePublisher
    from wattline.simulator.devices import encode
    from wattline.sources.mqtt import ConsumerConfig, MqttConsumer, parse_broker_url

    address = parse_broker_url(url)
    expected = {encode(ev.payload) for ev in events if ev.kind == "telemetry"}
    out = FeedResult("mqtt", telemetry=sum(ev.kind == "telemetry" for ev in events))
    seen: set[bytes] = set()
    ingest = MqttIngest(ctx.pipeline, ctx.dbs.main_reader, campus.organization_id)

    def handle(batch):
        ingest.handle(batch)  # committed when it returns
        seen.update(m.payload for m in batch if m.kind == "telemetry")

    config = ConsumerConfig(broker=address, prefix=MQTT_PREFIX, session_expiry_s=300,
                            client_id=f"wattline-demo-ingest-{socket.gethostname()}")
    consumer = MqttConsumer(config, handle, ingest.reject)
    try:
        consumer.start(timeout_s=MQTT_CONNECT_S)
    except BaseException:
        consumer.close()
        raise
    runner = threading.Thread(target=consumer.run, name="demo-mqtt-ingest", daemon=True)
    runner.start()
    publisher = DevicePublisher(fleet(), address.host, address.port, prefix=MQTT_PREFIX, username=address.username,
                                password=address.password, tls=address.tls, client_prefix="wattline-demo")
    def caught_up(wanted: set[bytes]) -> None:
        deadline = time.monotonic() + MQTT_WAIT_S
        while not wanted <= seen:
            if time.monotonic() > deadline or not runner.is_alive():
                raise TimeoutError(f"{len(wanted - seen)} published telemetry messages were not ingested "
                                   f"within {MQTT_WAIT_S:.0f} s")
            time.sleep(0.02)

    try:
        for name in sorted(online):
            publisher.connect(name)
        chunk: set[bytes] = set()
        for ev in events:
            publisher.handle(ev)
            if ev.kind == "telemetry":
                chunk.add(encode(ev.payload))
            # a broker's default queue for one client is 1000 messages, over it drops
            # silently: never publish more ahead of the ingester than a batch or two
            if len(chunk) >= PUBLISH_AHEAD:
                publisher.flush(60)
                caught_up(chunk)
                chunk = set()
        publisher.flush(60)
        caught_up(expected)
    finally:
        publisher.close()
        consumer.request_stop()
        runner.join(10)
    out.committed = len(seen & expected)
    return out


def print_summary(ctx: AppContext, campus: Campus, result: FeedResult, console: Console, *, port: int = 8000,
                  now: int | None = None) -> None:
    """Per classroom: devices, today's and yesterday's energy and cost (local days), its page."""
    now = clock.now_s() if now is None else now
    today = timeutil.local_date(now, TIMEZONE)
    start, end = timeutil.day_bounds(today, TIMEZONE)
    with ctx.dbs.main.connect() as conn:
        tariffs = cost_versions_repo.tariffs_for_series(conn, _series_assets(conn, campus))
    t = Table("classroom", "devices", "today kWh", f"today {CURRENCY}", "yesterday kWh", f"yesterday {CURRENCY}",
              title=f"{ORG} ({TIMEZONE}), today {today.isoformat()}",
              caption=f"{result.describe()}; rate {RATE} {CURRENCY}/kWh")
    for room, ids in sorted(campus.series.items()):
        days = [[0, 0], [0, 0]]  # [milli-Wh, cost micro] of yesterday, today
        for sid in ids:
            for i, b in enumerate(queries.energy_buckets(ctx.dbs.telemetry, sid, "day", start - 86400, end,
                                                         TIMEZONE, tariff=tariffs.get(sid))):
                days[i][0] += b.energy_milli_wh
                days[i][1] += b.cost_micro or 0
        (y_e, y_c), (t_e, t_c) = days
        t.add_row(room, str(len(ids)), f"{t_e / 1e6:.3f}", f"{t_c / 1e6:.2f}", f"{y_e / 1e6:.3f}",
                  f"{y_c / 1e6:.2f}")
    console.print(t)
    rooms = sorted(campus.series)
    console.print(f"classroom page: http://127.0.0.1:{port}/classrooms/{rooms[0]}"
                  + (f" (also {', '.join(rooms[1:])})" if rooms[1:] else ""), highlight=False)


def _series_assets(conn, campus: Campus) -> dict[int, int]:
    out = {}
    for row in device_registry.list_devices(conn, campus.organization_id):
        sid = device_registry.device(conn, campus.organization_id, row["esp32_name"],
                                     row["device_id"])["series"][ENERGY_TOTAL]
        out[sid] = row["asset_id"]
    return out

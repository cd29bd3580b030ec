"""``wattline simulate devices``: the campus device fleet, live, through a broker.

    wattline simulate devices --classrooms 4 --devices 6 [--broker mqtt://127.0.0.1:1883]
        [--prefix autovolt] [--seed 0] [--speed 1] [--start 2025-11-05T03:30:00Z] [--duration 1h]

Publishes the seed-002 telemetry, heartbeats and status (with Last Will) of every
controller at QoS 1; ``--speed 60`` runs a simulated minute per second, ``--speed 0``
as fast as the broker takes it. Without ``--broker`` (and without ``WATTLINE_MQTT_URL``)
the messages are written to stdout as JSON lines ``{"topic", "retain", "payload"}``, a
lost connection as the Will the broker would publish. SIGINT/SIGTERM stop cleanly:
messages are flushed, each controller publishes ``offline`` and disconnects.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Optional

import typer
from rich.console import Console

err = Console(stderr=True, highlight=False)


def devices_command(
    classrooms: int = typer.Option(3, min=1, help="classrooms, one ESP32 controller each (CR-101, CR-102 …)"),
    devices: int = typer.Option(4, min=1, help="devices per classroom: lights and fans alternating"),
    broker: Optional[str] = typer.Option(None, help="mqtt://host:port (default $WATTLINE_MQTT_URL; none: JSON lines on stdout)"),
    prefix: str = typer.Option("autovolt", help="topic prefix: <prefix>/<esp32_name>/telemetry|status|heartbeat"),
    seed: int = typer.Option(0, help="the same seed and start give the same fleet and messages"),
    speed: float = typer.Option(1.0, help="simulated seconds per real second; 0 = as fast as possible"),
    start: Optional[str] = typer.Option(None, help="simulated start, ISO-8601 with offset (default: now)"),
    duration: Optional[str] = typer.Option(None, help="simulated time to run: 30m, 8h, 2d (default: until stopped)"),
    faults: bool = typer.Option(True, help="resets, offline spells, out-of-order, repeats, clock drift"),
    client_prefix: str = typer.Option("wattline-sim", help="MQTT client ids are <client-prefix>-<esp32_name>"),
) -> None:
    """Simulated ESP32 controllers publishing the seed-002 payloads on a campus timetable."""
    from wattline import clock
    from wattline.cli_simulate import parse_interval
    from wattline.domain import timeutil
    from wattline.simulator.device_publisher import DevicePublisher, run_fleet, topic
    from wattline.simulator.devices import DeviceFleetSimulator, Faults, campus_fleet, will_payload
    from wattline.simulator.service import install_signal_handlers
    from wattline.sources.mqtt.broker_url import parse_broker_url

    if speed < 0:
        raise typer.BadParameter("--speed must be >= 0")
    try:
        start_ts = timeutil.parse_instant(start) if start else clock.now_s()
    except ValueError as exc:
        raise typer.BadParameter(str(exc))
    until = start_ts + parse_interval(duration) if duration else None
    fleet = campus_fleet(classrooms, devices, seed, faults=None if faults else Faults.none())
    sim = DeviceFleetSimulator(fleet, start_ts)
    url = broker or os.environ.get("WATTLINE_MQTT_URL")

    publisher = None
    sink = None
    if url:
        try:
            address = parse_broker_url(url)
        except ValueError as exc:
            raise typer.BadParameter(str(exc))
        publisher = DevicePublisher(fleet, address.host, address.port, prefix=prefix, username=address.username,
                                    password=address.password, tls=address.tls, client_prefix=client_prefix)
        err.print(f"{len(fleet.controllers)} controllers, {fleet.device_count} devices (seed {seed}) → {address} "
                  f"from {timeutil.iso(start_ts)} " + (f"at ×{speed:g}" if speed else "as fast as the broker takes it") + ("" if until else "; Ctrl+C to stop"))
    else:
        def sink(events):
            for ev in events:
                if ev.kind == "disconnect":  # what the broker would publish: the Will
                    line = {"topic": topic(prefix, ev.esp32_name, "status"), "retain": True,
                            "payload": will_payload(fleet.controller(ev.esp32_name))}
                elif ev.kind == "connect":
                    continue
                else:
                    line = {"topic": topic(prefix, ev.esp32_name, ev.kind), "retain": ev.retain, "payload": ev.payload}
                sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
            sys.stdout.flush()

    stop = threading.Event()
    restore = install_signal_handlers(stop)
    try:
        n = run_fleet(publisher, sim, speed=speed, until_ts=until, stop=stop, sink=sink)
    except KeyboardInterrupt:
        raise typer.Exit(130)
    finally:
        restore()
        if publisher is not None:
            publisher.close()
    s = sim.stats
    err.print(f"{n} events to {timeutil.iso(int(sim.now))}: {s.telemetry} telemetry ({s.buffered} buffered, "
              f"{s.duplicates} repeated, {s.out_of_order} out of order), {s.heartbeats} heartbeats, "
              f"{s.statuses} status; {s.resets} resets, {s.offline_spells} offline spells, "
              f"{s.dropped_by_device} readings lost by full device buffers")

"""Publishes the device fleet's events to an MQTT broker, the way the controllers would.

One paho client per controller, client id ``<client_prefix>-<esp32_name>``, MQTT 3.1.1
(as the ESP32 libraries speak), registering its Last Will (``offline``, retained, QoS 1)
on ``<prefix>/<esp32_name>/status``. Messages go out at QoS 1. A ``disconnect`` event
waits until the controller's messages are acknowledged, then cuts its TCP connection
without a DISCONNECT packet, so the broker publishes the Last Will, as it does when a
real controller loses power or Wi-Fi; ``connect`` opens the connection again.

paho refuses a publish once 65,535 QoS 1 messages are unacknowledged
(``MQTT_ERR_QUEUE_SIZE``): every return code is checked, and a client waits for its
oldest acknowledgements past ``max_pending`` so that never happens. A publish while the
connection is down is kept by paho and sent when it is back (its ``MQTT_ERR_NO_CONN``
is cleared from the message info, or waiting for it would raise even after its PUBACK).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from wattline.simulator.devices import DeviceFleet, DeviceFleetSimulator, FleetEvent, encode, will_payload

log = logging.getLogger(__name__)


def topic(prefix: str, esp32_name: str, kind: str) -> str:
    return f"{prefix}/{esp32_name}/{kind}"


@dataclass
class PublisherStats:
    published: int = 0
    connects: int = 0
    disconnects: int = 0
    waits: int = 0          # times a client waited for acknowledgements (backpressure)


class _Link:
    """One controller's connection."""

    def __init__(self, client: mqtt.Client):
        self.client = client
        self.connected = threading.Event()
        self.pending: deque[mqtt.MQTTMessageInfo] = deque()
        self.cut = False  # we cut it on purpose: do not count it as a failure

    def prune(self) -> int:
        while self.pending and self.pending[0].is_published():
            self.pending.popleft()
        return len(self.pending)


class DevicePublisher:
    def __init__(self, fleet: DeviceFleet, host: str, port: int = 1883, *, prefix: str = "autovolt",
                 username: str | None = None, password: str | None = None, tls: bool = False,
                 client_prefix: str = "wattline-sim", keepalive_s: int = 30, max_pending: int = 5000,
                 connect_timeout_s: float = 10.0):
        self.fleet = fleet
        self.host, self.port, self.prefix = host, port, prefix
        self._username, self._password, self._tls = username, password, tls
        self.client_prefix = client_prefix
        self.keepalive_s = keepalive_s
        self.max_pending = max_pending
        self.connect_timeout_s = connect_timeout_s
        self.stats = PublisherStats()
        self._links: dict[str, _Link] = {}

    # -- links --------------------------------------------------------------------

    def _new_link(self, esp32_name: str) -> _Link:
        c = self.fleet.controller(esp32_name)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{self.client_prefix}-{esp32_name}",
                             protocol=mqtt.MQTTv311, clean_session=True)
        if self._username:
            client.username_pw_set(self._username, self._password)
        if self._tls:
            client.tls_set()
        client.will_set(topic(self.prefix, esp32_name, "status"), encode(will_payload(c)), qos=1, retain=True)
        client.max_queued_messages_set(0)  # paho's own queue unbounded: max_pending bounds it
        link = _Link(client)

        def on_connect(_c, _u, _flags, reason_code, _props):
            if reason_code.is_failure:
                log.error("device connect refused", extra={"esp32_name": esp32_name, "reason": str(reason_code)})
                return
            link.connected.set()

        def on_disconnect(_c, _u, _flags, reason_code, _props):
            link.connected.clear()
            if not link.cut:
                log.warning("device connection lost; paho reconnects",
                            extra={"esp32_name": esp32_name, "reason": str(reason_code)})

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        return link

    def connect(self, esp32_name: str) -> None:
        link = self._links.get(esp32_name)
        if link is None:
            link = self._links[esp32_name] = self._new_link(esp32_name)
            link.client.connect_async(self.host, self.port, keepalive=self.keepalive_s)
        else:
            link.client.loop_stop()  # the thread of the cut connection, if still winding down
            link.cut = False
            link.client.reconnect()
        link.client.loop_start()
        if not link.connected.wait(self.connect_timeout_s):
            raise TimeoutError(f"{esp32_name}: no connection to {self.host}:{self.port} "
                               f"within {self.connect_timeout_s:.0f} s")
        self.stats.connects += 1

    def cut(self, esp32_name: str, drain_timeout_s: float = 10.0) -> None:
        """Lose the connection without a DISCONNECT packet: the broker publishes the Will."""
        link = self._links.get(esp32_name)
        if link is None:
            return
        self._drain(link, drain_timeout_s)
        link.cut = True
        sock = link.client.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # FIN without DISCONNECT
            except OSError:
                pass
        link.client.disconnect()  # stop paho from reconnecting (the packet cannot go out any more)
        link.connected.clear()
        self.stats.disconnects += 1

    def _drain(self, link: _Link, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while link.prune():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            link.pending[0].wait_for_publish(min(left, 1.0))
        return True

    # -- messages -----------------------------------------------------------------

    def publish(self, esp32_name: str, kind: str, payload: dict | bytes, retain: bool = False) -> mqtt.MQTTMessageInfo:
        link = self._links.get(esp32_name)
        if link is None:
            raise RuntimeError(f"{esp32_name} publishes before it connected")
        data = payload if isinstance(payload, bytes) else encode(payload)
        while True:
            if link.prune() >= self.max_pending:
                self.stats.waits += 1
                link.pending[0].wait_for_publish(1.0)
                continue
            info = link.client.publish(topic(self.prefix, esp32_name, kind), data, qos=1, retain=retain)
            if info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                # NO_CONN: paho keeps the message and sends it once reconnected, but with that
                # code left on its info, wait_for_publish()/is_published() would raise for ever
                info.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
                link.pending.append(info)
                self.stats.published += 1
                return info
            if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                self.stats.waits += 1
                if link.pending:
                    link.pending[0].wait_for_publish(1.0)
                else:
                    time.sleep(0.01)
                continue
            raise RuntimeError(f"{esp32_name}: publish failed: {mqtt.error_string(info.rc)}")

    def handle(self, ev: FleetEvent) -> mqtt.MQTTMessageInfo | None:
        if ev.kind == "connect":
            self.connect(ev.esp32_name)
        elif ev.kind == "disconnect":
            self.cut(ev.esp32_name)
        else:
            return self.publish(ev.esp32_name, ev.kind, ev.payload, ev.retain)
        return None

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every message is acknowledged by the broker."""
        deadline = time.monotonic() + timeout_s
        return all(self._drain(link, max(0.0, deadline - time.monotonic())) for link in self._links.values())

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush, publish each connected controller's ``offline`` status (retained) and
        disconnect cleanly (no Will then)."""
        self.flush(timeout_s)
        for esp32_name, link in self._links.items():
            if link.connected.is_set():
                self.publish(esp32_name, "status", will_payload(self.fleet.controller(esp32_name)), retain=True)
        self.flush(timeout_s)
        for link in self._links.values():
            link.cut = True
            link.client.disconnect()
            link.client.loop_stop()


def run_fleet(publisher: DevicePublisher | None, sim: DeviceFleetSimulator, *, speed: float,
              until_ts: float | None, stop: threading.Event, step_s: float = 1.0,
              sink: Callable[[Iterable[FleetEvent]], None] | None = None,
              wall_clock: Callable[[], float] = time.monotonic) -> int:
    """Drive ``sim`` in steps of ``step_s`` simulated seconds, ``speed`` × real time
    (``speed <= 0``: as fast as possible), handing the events to ``publisher`` (and/or to
    ``sink``), until ``until_ts`` or ``stop``. Returns the number of events."""
    n = 0
    t0_wall, t0_sim = wall_clock(), sim.now
    while not stop.is_set():
        target = sim.now + step_s
        if until_ts is not None:
            target = min(target, until_ts)
        if speed > 0:
            delay = t0_wall + (target - t0_sim) / speed - wall_clock()
            if delay > 0 and stop.wait(delay):
                break
        events = sim.advance(target)
        if sink is not None:
            sink(events)
        if publisher is not None:
            for ev in events:
                publisher.handle(ev)
        n += len(events)
        if until_ts is not None and sim.now >= until_ts:
            break
    return n

"""What a Mosquitto restart does to persistent sessions, plain and shared subscriptions.

    .venv/bin/python bench/mosquitto_shared_restart.py

Two persistent MQTT v5 sessions (clean_start=False, a session expiry) subscribe at
QoS 1, go offline (clean DISCONNECT, sessions kept), 10 messages are published, the
broker is restarted (SIGTERM: it saves its persistence file), 10 more are published,
then both reconnect WITHOUT subscribing again. Run once with a plain subscription and
once with a ``$share/g/`` one, on a broker of ``tests/mosquitto/test.conf``.

Measured with Mosquitto 2.0.11 (2026-12-02): plain 40 of 40 (each session gets all 20),
shared 10 of 20: the messages published after the restart are lost, because the shared
subscription was not restored from the persistence file. ``wattline mqtt`` subscribes
again on every connect, so a group that is connected when the broker comes back loses
only what is published before its first member is back.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

from mqtt_broker import MosquittoBroker  # noqa: E402


def run(topic_filter: str) -> tuple[int, int]:
    broker = MosquittoBroker(Path(tempfile.mkdtemp()) / "mosquitto").start()
    got: list[bytes] = []

    def session(cid: str, subscribe: bool) -> mqtt.Client:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
        c.on_message = lambda _c, _u, m: got.append(m.payload)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        c.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
        c.loop_start()
        time.sleep(0.3)
        if subscribe:
            c.subscribe(topic_filter, qos=1)
            time.sleep(0.3)
        return c

    def publish(n: int, tag: str) -> None:
        p = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{tag}", protocol=mqtt.MQTTv5)
        p.connect("127.0.0.1", broker.port)
        p.loop_start()
        for i in range(n):
            p.publish("t/x", f"{tag}{i}", qos=1).wait_for_publish(5)
        p.disconnect()
        p.loop_stop()

    try:
        clients = [session(cid, True) for cid in ("A", "B")]
        for c in clients:
            c.disconnect()
            c.loop_stop()
        publish(10, "before")
        broker.restart()
        publish(10, "after")
        clients = [session(cid, False) for cid in ("A", "B")]
        time.sleep(1.5)
        for c in clients:
            c.disconnect()
            c.loop_stop()
    finally:
        broker.stop()
    return len(got), sum(1 for g in got if g.startswith(b"after"))


if __name__ == "__main__":
    for name, flt in (("plain", "t/#"), ("shared", "$share/g/t/#")):
        n, after = run(flt)
        expected = 40 if name == "plain" else 20
        print(f"{name:>6} subscription: {n} of {expected} delivered, {after} of them published after the restart")

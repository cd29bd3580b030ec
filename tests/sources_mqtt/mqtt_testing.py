"""Helpers of the MQTT tests: a checked QoS 1 publisher, a consumer in a thread, waiting."""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from wattline.sources.mqtt import ConsumerConfig, MqttConsumer, parse_broker_url


def wait_until(predicate, timeout_s: float = 10.0, interval_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


class Publisher:
    """QoS 1 publisher that checks every return code; messages published while the
    broker is away are kept by paho and sent on reconnect."""

    def __init__(self, url: str, client_id: str | None = None):
        addr = parse_broker_url(url)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"pub-{uuid.uuid4().hex[:8]}")
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(min_delay=0.2, max_delay=1)  # type: ignore[arg-type]
        self._connected = threading.Event()
        self.client.on_connect = lambda *a: self._connected.set()
        self.infos: list[mqtt.MQTTMessageInfo] = []
        self.client.connect_async(addr.host, addr.port, keepalive=10)
        self.client.loop_start()
        assert self._connected.wait(10), "publisher could not connect"

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> mqtt.MQTTMessageInfo:
        while True:
            info = self.client.publish(topic, payload, qos=1, retain=retain)
            if info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                # NO_CONN: kept by paho and sent on reconnect; but its info would make
                # wait_for_publish()/is_published() raise for ever, even once it is acknowledged
                info.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
                self.infos.append(info)
                return info
            assert info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE, mqtt.error_string(info.rc)
            time.sleep(0.01)

    def wait_all(self, timeout_s: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout_s
        for info in self.infos:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                info.wait_for_publish(left)
            except RuntimeError:  # paho raises if the message was dropped (never for QoS 1 here)
                return False
        return all(i.is_published() for i in self.infos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def running_consumer(url: str, handle, reject=None, **config):
    """A started consumer whose loop runs in a thread; stopped (batch finished, acked) after."""
    config.setdefault("client_id", f"test-ingest-{uuid.uuid4().hex[:8]}")
    cfg = ConsumerConfig(broker=parse_broker_url(url), **config)
    consumer = MqttConsumer(cfg, handle, reject or (lambda batch, reason: None))
    consumer.start(timeout_s=10)
    thread = threading.Thread(target=consumer.run, daemon=True, name=f"consumer-{cfg.client_id}")
    thread.start()
    try:
        yield consumer
    finally:
        consumer.request_stop()
        thread.join(15)
        assert not thread.is_alive(), "consumer did not stop"

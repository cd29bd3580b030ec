"""An at-least-once MQTT consumer: batches, a handler, acknowledgements after it.

The consumer subscribes to ``<prefix>/+/telemetry``, ``/status`` and ``/heartbeat`` at
QoS 1 (through ``$share/<group>/`` with a group) over MQTT v5 with a persistent
session (stable client id, ``clean_start=False``, a session expiry interval), collects
messages into batches and calls ``handle(batch)``. A batch is what has queued up:
it closes at ``max_batch`` messages, ``max_wait_s`` after its first, or as soon as no
message came for ``linger_s`` — so a trickle is committed at once (latency: the commit
itself), and a flood makes large batches by itself, because messages queue while the
previous batch is committed (throughput). Every message is acknowledged to the broker (``PUBACK``,
paho's ``manual_ack``) only after the handler returned for the batch holding it, so
messages of a crashed consumer are delivered again to the next one with the same
client id; the handler must therefore be idempotent (the pipeline deduplicates) and
atomic (one transaction per batch).

A handler that raises is retried (tenacity, exponential backoff) a bounded number of
times. If it still fails, the batch is split in halves until the messages that fail on
their own are found; those go to ``reject(messages, reason)`` (the caller keeps them
as raw events with the reason) and are acknowledged: bad input never stops the
consumer nor holds back the good messages beside it. A handler that raises
:class:`HandlerUnavailable` says that its store is down rather than that the input is
bad: that batch is retried until it succeeds or the consumer is stopped, never rejected.

Traps handled here: paho's default ``clean_start`` for v5 is "clean on the first
connect", which would throw the stored session away at every start; without a session
expiry interval a v5 session ends with the connection; the broker sends only as many
unacknowledged messages as the client's Receive Maximum (and Mosquitto's
``max_inflight_messages``) allow, so that window must be larger than a batch; and an
acknowledgement is only meaningful on the connection that delivered the message
(packet ids are reused), so acknowledgements of messages received before a reconnect
are dropped: the broker delivers those messages again.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from tenacity import (RetryError, Retrying, retry_if_exception_type, retry_if_not_exception_type,
                      sleep_using_event, stop_after_attempt, stop_when_event_set, wait_exponential)

from wattline import clock
from wattline.sources.mqtt.broker_url import BrokerAddress
from wattline.sources.mqtt.topics import parse_topic, subscription_filters

log = logging.getLogger(__name__)

# MQTT's limit for Receive Maximum (and paho's for outstanding packet ids)
MAX_RECEIVE_MAXIMUM = 65535


@dataclass(frozen=True, slots=True)
class Message:
    """One received message. ``esp32_name``/``kind`` are ``None`` if the topic is not a
    device topic under the prefix. ``received_at`` is epoch seconds (wattline.clock);
    ``dup`` is the broker's redelivery flag."""

    topic: str
    payload: bytes
    mid: int
    received_at: float
    retain: bool
    esp32_name: str | None
    kind: str | None
    qos: int = 1
    dup: bool = False
    connection: int = field(default=0, compare=False)  # which connection delivered it


Handler = Callable[[list[Message]], None]
Rejecter = Callable[[list[Message], str], None]


class HandlerUnavailable(Exception):
    """Raised by a handler whose store is down: retry the batch until it succeeds or the
    consumer stops; never reject it (the input is not at fault)."""


@dataclass(frozen=True)
class ConsumerConfig:
    broker: BrokerAddress
    prefix: str = "autovolt"
    client_id: str = "wattline-ingest"
    group: str | None = None
    max_batch: int = 500
    max_wait_s: float = 0.1
    linger_s: float = 0.005  # a batch closes when no message came for this long
    attempts: int = 3                 # handler calls per batch before isolating the failure
    backoff_s: float = 0.05           # first retry delay; doubles up to backoff_max_s
    backoff_max_s: float = 2.0
    session_expiry_s: int = 7 * 86400  # how long the broker keeps the session while we are away
    keepalive_s: int = 30
    receive_maximum: int | None = None  # unacknowledged messages the broker may send; default 2 × max_batch (≥ 1000)

    def __post_init__(self):
        if self.max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        if self.max_wait_s <= 0:
            raise ValueError("max_wait_s must be > 0")
        if not 0 < self.linger_s <= self.max_wait_s:
            raise ValueError("linger_s must be > 0 and at most max_wait_s")
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")
        if not self.client_id:
            raise ValueError("a persistent session needs a stable, non-empty client id")
        subscription_filters(self.prefix, self.group)  # validates prefix and group

    @property
    def window(self) -> int:
        wanted = self.receive_maximum or max(1000, 2 * self.max_batch)
        return max(1, min(MAX_RECEIVE_MAXIMUM, wanted))


@dataclass
class ConsumerStats:
    received: int = 0
    redelivered: int = 0      # received with the broker's DUP flag
    batches: int = 0
    handled: int = 0          # messages whose handler call returned
    rejected: int = 0         # messages given to reject()
    handler_failures: int = 0  # handler calls that raised
    acked: int = 0
    ack_dropped: int = 0      # not acknowledged because the connection changed (redelivered)
    connects: int = 0
    last_error: str | None = None


class MqttConsumer:
    """Consume device topics into ``handle``; see the module docstring for the contract.

    ``start()`` connects and returns once subscribed; ``run(stop)`` processes batches
    until ``stop`` is set, then finishes the batch in hand, acknowledges it and
    disconnects (messages still queued locally are redelivered to the next session).
    """

    def __init__(self, config: ConsumerConfig, handle: Handler, reject: Rejecter):
        self.config = config
        self._handle = handle
        self._reject = reject
        self.stats = ConsumerStats()
        self._inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._conn_lock = threading.Lock()
        self._connection = 0
        self._connected = False
        self._subscribed = threading.Event()
        self._gone = threading.Event()  # set by on_disconnect
        self._stop = threading.Event()
        self._client = self._make_client()

    # -- connection ---------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        cfg = self.config
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cfg.client_id,
                             protocol=mqtt.MQTTv5, manual_ack=True)
        if cfg.broker.username:
            client.username_pw_set(cfg.broker.username, cfg.broker.password)
        if cfg.broker.tls:
            client.tls_set()
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    @property
    def client(self) -> mqtt.Client:
        return self._client

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect and wait for the subscription; raises ``TimeoutError`` if the broker
        does not answer in time (the client keeps retrying in the background)."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.config.session_expiry_s
        props.ReceiveMaximum = self.config.window
        # clean_start=False always: paho's default cleans the session on the first connect
        self._client.connect_async(self.config.broker.host, self.config.broker.port,
                                   keepalive=self.config.keepalive_s, clean_start=False, properties=props)
        self._client.loop_start()
        if not self._subscribed.wait(timeout_s):
            raise TimeoutError(f"no subscription on {self.config.broker} within {timeout_s:.0f} s"
                               + (f": {self.stats.last_error}" if self.stats.last_error else ""))

    def wait_subscribed(self, timeout_s: float) -> bool:
        return self._subscribed.wait(timeout_s)

    def _on_connect(self, client, _userdata, flags, reason_code, _properties):
        if reason_code.is_failure:
            self.stats.last_error = f"connect refused: {reason_code}"
            log.error("mqtt connect refused", extra={"reason": str(reason_code), "broker": str(self.config.broker)})
            return
        with self._conn_lock:
            self._connection += 1
            self._connected = True
        self._gone.clear()
        self.stats.connects += 1
        log.info("mqtt connected", extra={"broker": str(self.config.broker), "client_id": self.config.client_id,
                                          "session_present": bool(flags.session_present)})
        # subscribe every time (a session that expired has lost its subscriptions), but have
        # the retained status messages sent only for a new subscription, not at every reconnect
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        client.subscribe([(f, options) for f in subscription_filters(self.config.prefix, self.config.group)])

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties):
        with self._conn_lock:
            self._connection += 1  # acknowledgements of earlier messages are void from now on
            self._connected = False
        self._subscribed.clear()
        self._gone.set()
        if not self._stop.is_set():
            self.stats.last_error = f"disconnected: {reason_code}"
            log.warning("mqtt disconnected; paho reconnects", extra={"reason": str(reason_code)})

    def _on_subscribe(self, _client, _userdata, _mid, reason_codes, _properties):
        failed = [str(rc) for rc in reason_codes if rc.is_failure or rc.value < 1]
        if failed:
            self.stats.last_error = f"subscription refused or downgraded below QoS 1: {failed}"
            log.error("mqtt subscription refused", extra={"reasons": failed})
            return
        self._subscribed.set()

    def _on_message(self, _client, _userdata, msg: mqtt.MQTTMessage):
        # network thread: only wrap and queue. An exception here would end paho's loop
        # thread, so a topic that is not UTF-8 is passed on with replacement characters
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = bytes(msg._topic).decode("utf-8", "replace")
        parsed = parse_topic(self.config.prefix, topic)
        self._inbox.put(Message(
            topic=topic, payload=bytes(msg.payload), mid=msg.mid, received_at=clock.now(),
            retain=bool(msg.retain), esp32_name=parsed[0] if parsed else None,
            kind=parsed[1] if parsed else None, qos=msg.qos, dup=bool(msg.dup),
            connection=self._connection))

    # -- the loop -----------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> None:
        """Process batches until ``stop`` (or :meth:`request_stop`), then disconnect."""
        if stop is not None:
            threading.Thread(target=lambda: (stop.wait(), self._stop.set()), daemon=True).start()
        try:
            while not self._stop.is_set():
                batch = self._next_batch()
                if batch:
                    self._process(batch)
        finally:
            self.close()

    def request_stop(self) -> None:
        self._stop.set()

    def close(self, timeout_s: float = 5.0) -> None:
        """Disconnect: the queued acknowledgements are written before the DISCONNECT, and
        paho's loop ends by itself once it is sent (stopping the loop first could drop them)."""
        self._stop.set()
        try:
            if self._client.disconnect() == MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._gone.wait(timeout_s)
        finally:
            self._client.loop_stop()

    def _next_batch(self) -> list[Message]:
        try:
            first = self._inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.config.max_wait_s
        while len(batch) < self.config.max_batch:
            try:
                batch.append(self._inbox.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._inbox.get(timeout=min(remaining, self.config.linger_s)))
            except queue.Empty:
                break  # a quiet moment: commit what came
        return batch

    def _process(self, batch: list[Message]) -> None:
        self.stats.batches += 1
        self.stats.received += len(batch)
        self.stats.redelivered += sum(m.dup for m in batch)
        try:
            self._call_with_retries(batch)
        except _Stopped:
            return  # store down and a stop requested: leave unacknowledged, redelivered later
        except Exception as exc:  # noqa: BLE001 - any handler error: find the culprits
            self._isolate(batch, exc)
            return
        self._done(batch)

    def _call_handler(self, batch: list[Message]) -> None:
        try:
            self._handle(batch)
        except Exception as exc:
            self.stats.handler_failures += 1
            self.stats.last_error = f"handler: {_describe(exc)}"
            log.warning("mqtt batch handler failed", exc_info=not isinstance(exc, HandlerUnavailable),
                        extra={"messages": len(batch), "error": _describe(exc)})
            raise

    def _call_with_retries(self, batch: list[Message]) -> None:
        cfg = self.config
        wait = wait_exponential(multiplier=cfg.backoff_s, min=cfg.backoff_s, max=cfg.backoff_max_s)
        try:
            for attempt in Retrying(stop=stop_after_attempt(cfg.attempts), wait=wait, reraise=True,
                                    retry=retry_if_not_exception_type(HandlerUnavailable)):
                with attempt:
                    self._call_handler(batch)
        except HandlerUnavailable:
            self._wait_until_available(batch)

    def _wait_until_available(self, batch: list[Message]) -> None:
        """The store is down: keep retrying (capped backoff) until it is back or we stop."""
        cfg = self.config
        try:
            for attempt in Retrying(stop=stop_when_event_set(self._stop), sleep=sleep_using_event(self._stop),
                                    wait=wait_exponential(multiplier=cfg.backoff_s, max=max(cfg.backoff_max_s, 5.0)),
                                    retry=retry_if_exception_type(HandlerUnavailable)):
                with attempt:
                    self._call_handler(batch)
        except RetryError:
            raise _Stopped from None

    def _isolate(self, batch: list[Message], exc: Exception) -> None:
        """Bisect a failing batch: halves that succeed are acknowledged, a message that
        fails alone is rejected with the reason."""
        if len(batch) == 1:
            self._reject_and_ack(batch, _describe(exc))
            return
        mid = len(batch) // 2
        for half in (batch[:mid], batch[mid:]):
            try:
                self._call_handler(half)
            except HandlerUnavailable:
                try:
                    self._wait_until_available(half)
                except _Stopped:
                    return
            except Exception as half_exc:  # noqa: BLE001
                self._isolate(half, half_exc)
                continue
            self._done(half)

    def _reject_and_ack(self, messages: list[Message], reason: str) -> None:
        # a reject() that fails means the caller's store is down: retry until it works
        cfg = self.config
        try:
            for attempt in Retrying(stop=stop_when_event_set(self._stop), sleep=sleep_using_event(self._stop),
                                    wait=wait_exponential(multiplier=cfg.backoff_s, max=max(cfg.backoff_max_s, 5.0)),
                                    before_sleep=lambda rs: log.error("mqtt reject failed; retrying", extra={
                                        "error": _describe(rs.outcome.exception())})):
                with attempt:
                    self._reject(messages, reason)
        except RetryError:
            return  # stopping: not acknowledged, so redelivered to the next session
        self.stats.rejected += len(messages)
        log.warning("mqtt messages rejected", extra={"messages": len(messages), "reason": reason,
                                                     "topics": sorted({m.topic for m in messages})[:5]})
        self._ack(messages)

    def _done(self, batch: list[Message]) -> None:
        self.stats.handled += len(batch)
        self._ack(batch)

    def _ack(self, messages: list[Message]) -> None:
        with self._conn_lock:  # held so a reconnect cannot slip between the check and the PUBACK
            for m in messages:
                if m.qos == 0:
                    continue
                if not self._connected or m.connection != self._connection:
                    self.stats.ack_dropped += 1
                    continue
                rc = self._client.ack(m.mid, m.qos)
                if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                    self.stats.acked += 1
                else:  # connection gone: the broker redelivers it
                    self.stats.ack_dropped += 1


class _Stopped(Exception):
    """Internal: a stop was requested while waiting for the store to come back."""


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_until_signalled(consumer: MqttConsumer) -> None:
    """Run in the main thread; SIGTERM/SIGINT finish the batch, acknowledge and
    disconnect; a second signal interrupts at once (``KeyboardInterrupt``)."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(_signum, _frame):
        if consumer._stop.is_set():
            raise KeyboardInterrupt
        # Event.set takes a lock the interrupted thread may hold: set it from another thread
        threading.Thread(target=consumer.request_stop, daemon=True).start()

    for s in previous:
        signal.signal(s, handler)
    try:
        consumer.run()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)

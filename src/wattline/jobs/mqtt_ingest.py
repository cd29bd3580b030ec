"""MQTT messages into the device pipeline: the handler and rejecter of ``wattline mqtt``.

A batch's ``telemetry`` messages go to :func:`~wattline.jobs.device_telemetry.ingest_documents`
in one call (source ``mqtt``): invalid documents are kept with their reason, unknown
devices are kept until ``wattline devices add`` replays them, and everything is
committed when it returns, so the consumer may then acknowledge the batch. A database
that is down raises :class:`HandlerUnavailable`: the consumer retries that batch and
never rejects it. Messages the consumer rejects (they fail on their own) are kept as
invalid documents with the consumer's reason.

``status`` (the controller's retained Last Will, online/offline) and ``heartbeat``
messages go to the controller-status stage (``jobs.controller_status``): kept as raw
events, the latest state in ``controller_status``, each change in
``controller_status_events``; an invalid one is kept with its reason. Telemetry
arrival moves the controller's ``last_telemetry_at``. Every message is counted in
``wattline_mqtt_device_messages_total`` by kind; messages on topics that are not
device topics (kind ``other``) are only counted.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

from wattline import logs, metrics
from wattline.jobs.controller_status import Received, record_messages
from wattline.jobs.device_telemetry import ingest_documents
from wattline.pipeline.device_ingest import DeviceIngest
from wattline.pipeline.ingest import Pipeline
from wattline.sources.mqtt import HandlerUnavailable, Message
from wattline.store.engines import DbEngine
from wattline.store.mqtt_db_errors import is_database_unavailable

log = logs.get("wattline.mqtt")

SOURCE = "mqtt"
MQTT_MESSAGES = metrics.MQTT_DEVICE_MESSAGES


@dataclass
class MqttIngest:
    """``handle`` and ``reject`` for :class:`~wattline.sources.mqtt.MqttConsumer`, for the
    devices of one organization."""

    pipeline: Pipeline
    main_reader: DbEngine
    organization_id: int
    main: DbEngine | None = None  # the writable registry: auto-registration of unknown devices

    def handle(self, batch: list[Message]) -> None:
        documents, signals = [], []
        for m in batch:
            kind = m.kind or "other"
            MQTT_MESSAGES.labels(kind=kind).inc()
            if kind == "telemetry":
                documents.append(m.payload)
            elif kind in ("status", "heartbeat"):
                signals.append(Received(m.payload, kind, m.esp32_name, int(m.received_at)))
        if not documents and not signals:
            return
        try:
            if signals:
                status = record_messages(self.pipeline.telemetry, self.organization_id, signals, source=SOURCE)
                if status.invalid:
                    log.info("mqtt.status_invalid", invalid=status.invalid)
            if not documents:
                return
            result, errors = ingest_documents(self.pipeline, self.main_reader, self.organization_id, documents,
                                              source=SOURCE, main=self.main)
        except Exception as exc:
            if is_database_unavailable(exc):
                raise HandlerUnavailable(str(exc).splitlines()[0]) from exc
            raise
        if errors or result.unknown_device:
            log.info("mqtt.batch", telemetry=len(documents), invalid=len(errors),
                     unknown_device=result.unknown_device)

    def reject(self, messages: list[Message], reason: str) -> None:
        """Keep messages the handler failed on as invalid documents with ``reason`` (the
        consumer retries a reject that raises, until it works or stops)."""
        DeviceIngest(self.pipeline).keep_invalid([m.payload for m in messages], [reason] * len(messages),
                                                 self.organization_id, SOURCE)
        log.warning("mqtt.rejected", messages=len(messages), reason=reason)


class BackgroundIngester:
    """The MQTT ingester inside a server process (``wattline serve`` with
    ``WATTLINE_MQTT_URL``): the same consumer and handler as ``wattline mqtt``, in a
    thread. :meth:`start` returns at once (a broker that is down is retried in the
    background); :meth:`stop` finishes the batch in hand, acknowledges it and disconnects.
    """

    def __init__(self, ctx, url: str, *, prefix: str = "autovolt", group: str | None = None,
                 client_id: str | None = None, organization: str | None = None):
        from wattline.sources.mqtt import ConsumerConfig, parse_broker_url

        self.ctx = ctx
        self.organization = organization
        self.config = ConsumerConfig(broker=parse_broker_url(url), prefix=prefix, group=group,
                                     client_id=client_id or f"wattline-serve-{socket.gethostname()}")
        self.consumer = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from wattline import provisioning
        from wattline.sources.mqtt import MqttConsumer

        with self.ctx.dbs.main.begin() as conn:
            org = provisioning.organization_named(conn, self.organization)
        ingest = MqttIngest(self.ctx.pipeline, self.ctx.dbs.main_reader, org, self.ctx.dbs.main)
        self.consumer = MqttConsumer(self.config, ingest.handle, ingest.reject)
        self._thread = threading.Thread(target=self._run, name="mqtt-ingest", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.consumer.start(timeout_s=10)
            log.info("mqtt.subscribed", broker=str(self.config.broker), client_id=self.config.client_id)
        except (TimeoutError, OSError) as exc:  # paho keeps retrying; the loop below serves once it is up
            log.warning("mqtt.not_subscribed_yet", broker=str(self.config.broker), error=str(exc)[:200])
        self.consumer.run(self._stop)

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self.consumer is not None:
            self.consumer.request_stop()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self.consumer is not None:
            s = self.consumer.stats
            log.info("mqtt.stopped", received=s.received, handled=s.handled, rejected=s.rejected, acked=s.acked)

"""MQTT messages into the device pipeline: the handler and rejecter of ``wattline mqtt``.

A batch's ``telemetry`` messages go to :func:`~wattline.jobs.device_telemetry.ingest_documents`
in one call (source ``mqtt``): invalid documents are kept with their reason, unknown
devices are kept until ``wattline devices add`` replays them, and everything is
committed when it returns, so the consumer may then acknowledge the batch. A database
that is down raises :class:`HandlerUnavailable`: the consumer retries that batch and
never rejects it. Messages the consumer rejects (they fail on their own) are kept as
invalid documents with the consumer's reason.

``status`` (the controller's retained Last Will, online/offline) and ``heartbeat``
messages are counted in ``wattline_mqtt_device_messages_total`` by kind and are not
stored yet; nor are messages on topics that are not device topics (kind ``other``).
"""

from __future__ import annotations

from dataclasses import dataclass

from wattline import logs, metrics
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

    def handle(self, batch: list[Message]) -> None:
        documents = []
        for m in batch:
            kind = m.kind or "other"
            MQTT_MESSAGES.labels(kind=kind).inc()
            if kind == "telemetry":
                documents.append(m.payload)
        if not documents:
            return
        try:
            result, errors = ingest_documents(self.pipeline, self.main_reader, self.organization_id, documents,
                                              source=SOURCE)
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

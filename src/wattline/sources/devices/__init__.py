"""Metered campus devices (seed 002): the telemetry document (:mod:`.payload`) and
its readings (:mod:`.normalize`), for the MQTT consumer and the HTTP ingest route."""

from .normalize import DeviceBatch, DeviceMessage, KeptMessage, normalize
from .payload import PayloadError, TelemetryPayload, parse_document, parse_documents

__all__ = ("DeviceBatch", "DeviceMessage", "KeptMessage", "PayloadError", "TelemetryPayload", "normalize",
           "parse_document", "parse_documents")

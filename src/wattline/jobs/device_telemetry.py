"""Device telemetry flows: validated documents into the pipeline, and the replay of a
newly registered device's kept messages.

The device source parses and normalizes (``sources.devices``) with a fresh read-only
resolver, so a device registered a moment ago is known; the device stage
(``pipeline.device_ingest``) keeps, recognises or ingests. Both the HTTP route and
an MQTT consumer call :func:`ingest_payloads` (the consumer through
:func:`ingest_documents`, which keeps invalid documents instead of refusing them);
``wattline devices add`` calls :func:`replay_device`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from wattline import clock, logs, metrics
from wattline.pipeline.device_ingest import DeviceIngest, DeviceIngestResult
from wattline.pipeline.ingest import Pipeline
from wattline.sources.devices import PayloadError, TelemetryPayload, normalize, parse_document
from wattline.store import device_telemetry
from wattline.store.device_resolver import RegistryDeviceResolver
from wattline.store.engines import DbEngine, write_transaction

log = logs.get("wattline.devices")


def ingest_payloads(pipeline: Pipeline, main_reader: DbEngine, organization_id: int,
                    payloads: Sequence[TelemetryPayload], raws: Sequence[Any], *, source: str,
                    now: int | None = None) -> DeviceIngestResult:
    """Valid payloads of one organization's devices (``raws[i]``: payload ``i`` exactly
    as it arrived) into the ledger, or kept with the reason."""
    received = clock.now_s() if now is None else int(now)
    resolver = RegistryDeviceResolver(main_reader, organization_id)
    batch = normalize(payloads, raws, resolver, now=received, source=source)
    result = DeviceIngest(pipeline).ingest(batch, organization_id, now=received)
    if result.unknown_device or result.classroom_mismatches:
        log.info("devices.ingest", source=source, unknown_device=result.unknown_device,
                 classroom_mismatches=result.classroom_mismatches)
    return result


def ingest_documents(pipeline: Pipeline, main_reader: DbEngine, organization_id: int, documents: Sequence[Any],
                     *, source: str, now: int | None = None) -> tuple[DeviceIngestResult, list[PayloadError]]:
    """Documents as received (JSON text or bytes, or mappings), for a receiver that
    cannot refuse any (MQTT): an invalid one is kept as a raw event with the reason
    (``device_quarantine`` kind ``invalid``) and returned; the valid ones are ingested.
    ``kept_indexes`` of the result are positions among the valid documents."""
    payloads, raws, errors = [], [], []
    for i, d in enumerate(documents):
        got = parse_document(d, i)
        if isinstance(got, PayloadError):
            errors.append(got)
        else:
            payloads.append(got)
            raws.append(d)
    if errors:
        DeviceIngest(pipeline).keep_invalid([documents[e.index] for e in errors], [e.message for e in errors],
                                            organization_id, source, now=now)
    result = (ingest_payloads(pipeline, main_reader, organization_id, payloads, raws, source=source, now=now)
              if payloads else DeviceIngestResult())
    return result, errors


@dataclass
class ReplayResult:
    """``pending``: kept messages of the device found; ``replayed``: those now in the
    ledger (or recognised as already there); ``result``: what the device stage did."""

    pending: int
    replayed: int
    result: DeviceIngestResult | None = None


def replay_device(pipeline: Pipeline, main_reader: DbEngine, organization_id: int, esp32_name: str,
                  device_id: str, *, now: int | None = None) -> ReplayResult:
    """Replay the messages kept while the device was unknown, in arrival order; each is
    marked replayed once through. Running it again changes nothing."""
    with pipeline.telemetry.connect() as conn:
        rows = device_telemetry.pending_unknown(conn, organization_id, esp32_name, device_id)
    if not rows:
        return ReplayResult(0, 0)
    payloads, raws, ids = [], [], []
    for rid, text in rows:
        got = parse_document(text)
        if isinstance(got, TelemetryPayload):  # it was valid when kept; the model may have grown stricter
            payloads.append(got)
            raws.append(text)  # the same text: the same raw event
            ids.append(rid)
    result = ingest_payloads(pipeline, main_reader, organization_id, payloads, raws, source="replay", now=now)
    still_kept = {ids[i] for i in result.kept_indexes}
    done = [rid for rid in ids if rid not in still_kept]
    if done:
        with write_transaction(pipeline.telemetry) as conn:
            device_telemetry.mark_replayed(conn, organization_id, done, clock.now_s() if now is None else int(now))
    metrics.DEVICE_MESSAGES_REPLAYED.inc(len(done))
    log.info("devices.replayed", esp32_name=esp32_name, device_id=device_id, pending=len(rows), replayed=len(done))
    return ReplayResult(len(rows), len(done), result)

"""Device telemetry flows: validated documents into the pipeline, and the replay of a
newly registered device's kept messages.

The device source parses and normalizes (``sources.devices``) with a fresh read-only
resolver, so a device registered a moment ago is known; the device stage
(``pipeline.device_ingest``) keeps, recognises or ingests. Both the HTTP route and
an MQTT consumer call :func:`ingest_payloads` (the consumer through
:func:`ingest_documents`, which keeps invalid documents instead of refusing them);
``wattline devices add`` calls :func:`replay_device`.

With the organization's ``auto_register_devices`` on (``wattline orgs set
--auto-register-devices on``), a message from an unknown device registers it first
(:func:`auto_register`) through the provisioning service, in the classroom its
payload names (created, in the organization's zone, if missing), with method
``counter`` if the payload carries ``energy_wh_total`` else ``power``; then it goes to
the ledger like any other. Off, the device's messages are kept until ``wattline
devices add`` replays them. Telemetry arrival (not a replay) also moves the
controller's ``last_telemetry_at`` (``pipeline.device_status``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from wattline import clock, logs, metrics, provisioning
from wattline.pipeline.device_ingest import DeviceIngest, DeviceIngestResult
from wattline.pipeline.device_status import DeviceStatusStage
from wattline.pipeline.ingest import Pipeline
from wattline.sources.devices import PayloadError, TelemetryPayload, normalize, parse_document
from wattline.store import device_registry, device_telemetry, org_settings_repo
from wattline.store.device_resolver import RegistryDeviceResolver
from wattline.store.engines import DbEngine, write_transaction

log = logs.get("wattline.devices")


REPLAY = "replay"


def auto_register(main: DbEngine, main_reader: DbEngine, organization_id: int,
                  payloads: Sequence[TelemetryPayload]) -> list[tuple[str, str]]:
    """Register the unknown devices of ``payloads`` if the organization says so; the
    (esp32 name, device id) registered. A payload naming no classroom cannot place its
    device: that device stays unknown (kept, replayed once registered by hand)."""
    with main_reader.connect() as conn:
        if not org_settings_repo.auto_register_devices(conn, organization_id):
            return []
        firsts: dict[tuple[str, str], TelemetryPayload] = {}
        for p in payloads:
            firsts.setdefault((p.esp32_name, p.device_id), p)
        unknown = [(k, p) for k, p in firsts.items() if p.classroom
                   and device_registry.device_asset_id(conn, organization_id, *k) is None]
    added = []
    for (esp, dev), p in unknown:
        switches = p.switch_state if isinstance(p.switch_state, dict) else {}
        switch = next(iter(switches)) if len(switches) == 1 else None  # several: which one feeds it is unknown
        method = "counter" if p.energy_wh_total is not None else "power"
        try:
            with main.begin() as conn:
                if device_registry.classroom(conn, organization_id, p.classroom) is None:
                    provisioning.add_classroom(conn, p.classroom, None, organization_id=organization_id)
                provisioning.add_device(conn, esp, dev, p.classroom, switch=switch, method=method,
                                        organization_id=organization_id)
        except Exception as exc:  # noqa: BLE001 - a bad name, or another ingester registered it first
            with main_reader.connect() as conn:
                if device_registry.device_asset_id(conn, organization_id, esp, dev) is None:
                    log.warning("devices.auto_register_failed", esp32_name=esp, device_id=dev,
                                error=str(exc).splitlines()[0][:200])
            continue
        added.append((esp, dev))
        metrics.DEVICES_AUTO_REGISTERED.inc()
        log.info("devices.auto_registered", esp32_name=esp, device_id=dev, classroom=p.classroom, method=method)
    return added


def ingest_payloads(pipeline: Pipeline, main_reader: DbEngine, organization_id: int,
                    payloads: Sequence[TelemetryPayload], raws: Sequence[Any], *, source: str,
                    now: int | None = None, main: DbEngine | None = None) -> DeviceIngestResult:
    """Valid payloads of one organization's devices (``raws[i]``: payload ``i`` exactly
    as it arrived) into the ledger, or kept with the reason. ``main``: the writable
    registry, for auto-registration (without it, unknown devices are kept)."""
    received = clock.now_s() if now is None else int(now)
    registered = auto_register(main, main_reader, organization_id, payloads) if (
        main is not None and source != REPLAY) else []
    resolver = RegistryDeviceResolver(main_reader, organization_id)
    resolver.prefetch({(p.esp32_name, p.device_id) for p in payloads})
    batch = normalize(payloads, raws, resolver, now=received, source=source)
    result = DeviceIngest(pipeline).ingest(batch, organization_id, now=received)
    if source != REPLAY:  # a replay is old news: the controller was not heard now
        DeviceStatusStage(pipeline.telemetry).telemetry_seen(
            organization_id, {p.esp32_name: received for p in payloads})
    for esp, dev in registered:  # what it sent while the setting was off, kept: now into the ledger too
        replay_device(pipeline, main_reader, organization_id, esp, dev, now=now)
    if result.unknown_device or result.classroom_mismatches:
        log.info("devices.ingest", source=source, unknown_device=result.unknown_device,
                 classroom_mismatches=result.classroom_mismatches)
    return result


def ingest_documents(pipeline: Pipeline, main_reader: DbEngine, organization_id: int, documents: Sequence[Any],
                     *, source: str, now: int | None = None,
                     main: DbEngine | None = None) -> tuple[DeviceIngestResult, list[PayloadError]]:
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
    result = (ingest_payloads(pipeline, main_reader, organization_id, payloads, raws, source=source, now=now,
                              main=main)
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
    result = ingest_payloads(pipeline, main_reader, organization_id, payloads, raws, source=REPLAY, now=now)
    still_kept = {ids[i] for i in result.kept_indexes}
    done = [rid for rid in ids if rid not in still_kept]
    if done:
        with write_transaction(pipeline.telemetry) as conn:
            device_telemetry.mark_replayed(conn, organization_id, done, clock.now_s() if now is None else int(now))
    metrics.DEVICE_MESSAGES_REPLAYED.inc(len(done))
    log.info("devices.replayed", esp32_name=esp32_name, device_id=device_id, pending=len(rows), replayed=len(done))
    return ReplayResult(len(rows), len(done), result)

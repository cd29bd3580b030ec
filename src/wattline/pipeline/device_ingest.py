"""The device stage in front of the pipeline: a :class:`DeviceBatch` in, messages kept,
recognised or ingested.

* A message that cannot go to the ledger now (unknown device, device clock far
  ahead) is kept: its raw event and a ``device_quarantine`` row with the reason.
  Once its device is registered, it is replayed through :meth:`DeviceIngest.ingest`
  like any other message (see ``jobs.device_telemetry.replay_device``).
* A message whose (device, sequence number, uptime) was taken in before is a
  redelivery (``domain.devices.same_message``): its raw event is kept, its readings
  are not used again, even if it was re-rendered with another timestamp.
* The rest go through :meth:`Pipeline.ingest` (which makes an identical reading a
  no-op); their identities are recorded after that commit. A crash in between
  only means a redelivery goes through the pipeline again, which changes nothing.

Every step is idempotent, so a sender that retries after any failure loses
nothing and doubles nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from wattline import clock, metrics
from wattline.domain.devices import DRIFT_S, INVALID, UNKNOWN_DEVICE, DeviceBatch, DeviceMessage, same_message
from wattline.pipeline.ingest import IngestResult, Pipeline
from wattline.store import device_telemetry, raw_events
from wattline.store.engines import write_transaction


@dataclass
class DeviceIngestResult:
    """Per message: ``accepted`` (readings in the ledger, new), ``repeats`` (delivered
    before: same content, or same sequence identity), ``quarantined`` (kept out: a
    reading failed validation, or the device clock is far ahead), ``unknown_device``
    (kept until the device is registered); ``classroom_mismatches``: payloads naming
    another classroom than the registry's (the registry's is used); ``clock_drift``:
    messages whose device clock is ahead of their arrival by more than
    ``domain.devices.DRIFT_S``; ``out_of_order``: messages older than their device's
    newest stored reading (the ledger re-derives around them)."""

    accepted: int = 0
    repeats: int = 0
    quarantined: int = 0
    unknown_device: int = 0
    classroom_mismatches: int = 0
    clock_drift: int = 0
    out_of_order: int = 0
    readings: IngestResult = field(default_factory=IngestResult)
    kept_indexes: list[int] = field(default_factory=list)  # positions of the messages kept out

    def to_dict(self) -> dict[str, int]:
        return {"accepted": self.accepted, "repeats": self.repeats, "quarantined": self.quarantined,
                "unknown_device": self.unknown_device, "clock_drift": self.clock_drift,
                "out_of_order": self.out_of_order}


class DeviceIngest:
    """Device messages into the pipeline (one instance may serve many batches)."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self.telemetry = pipeline.telemetry

    def ingest(self, batch: DeviceBatch, organization_id: int, *, now: int | None = None) -> DeviceIngestResult:
        received = clock.now_s() if now is None else int(now)
        source = batch.batch.source
        out = DeviceIngestResult(classroom_mismatches=batch.classroom_mismatches)
        if batch.kept:
            self._keep(batch, organization_id, received, out)
        if batch.messages:
            self._ingest_messages(batch, organization_id, received, out)
        for outcome in ("accepted", "repeats", "quarantined", "unknown_device"):
            metrics.DEVICE_MESSAGES.labels(source, outcome).inc(getattr(out, outcome))
        metrics.DEVICE_CLASSROOM_MISMATCHES.labels(source).inc(out.classroom_mismatches)
        metrics.DEVICE_QUALITY.labels(source, "clock_drift").inc(out.clock_drift)
        metrics.DEVICE_QUALITY.labels(source, "out_of_order").inc(out.out_of_order)
        return out

    def keep_invalid(self, raws: Sequence[Any], reasons: Sequence[str], organization_id: int, source: str,
                     *, now: int | None = None) -> list[int]:
        """Keep documents that are not valid telemetry (an MQTT consumer cannot refuse
        them): raw events plus quarantine rows with the reason; their raw event ids."""
        received = clock.now_s() if now is None else int(now)
        with write_transaction(self.telemetry) as conn:
            ids = raw_events.store(conn, list(raws), source, received)
            device_telemetry.keep(conn, [(organization_id, rid, INVALID, reason[:300], None, None, source, received)
                                         for rid, reason in zip(ids, reasons)])
        metrics.DEVICE_MESSAGES.labels(source, "invalid").inc(len(ids))
        return ids

    # -- steps ---------------------------------------------------------------

    def _keep(self, batch: DeviceBatch, organization_id: int, received: int, out: DeviceIngestResult) -> None:
        source = batch.batch.source
        with write_transaction(self.telemetry) as conn:
            ids = raw_events.store(conn, [k.raw for k in batch.kept], source, received)
            device_telemetry.keep(conn, [
                (organization_id, rid, k.kind, k.reason[:300], k.esp32_name, k.device_id, source, received)
                for rid, k in zip(ids, batch.kept)])
        for k in batch.kept:
            if k.kind == UNKNOWN_DEVICE:
                out.unknown_device += 1
            else:
                out.quarantined += 1
            out.kept_indexes.append(k.index)

    def _ingest_messages(self, batch: DeviceBatch, organization_id: int, received: int,
                         out: DeviceIngestResult) -> None:
        rb = batch.batch
        raw_ids = device_telemetry.raw_event_ids(rb.raw_payloads)
        with self.telemetry.connect() as conn:
            redelivered = self._redeliveries(conn, batch.messages)
            # stored before and not a kept message now replayed: the same document again
            seen_raw = (device_telemetry.existing_raw_ids(conn, raw_ids)
                        - device_telemetry.kept_raw_ids(conn, organization_id, raw_ids))
        fresh = [m for m in batch.messages if m.index not in redelivered]
        out.repeats += len(batch.messages) - len(fresh)
        take = np.isin(rb.raw_index, np.array([m.raw_index for m in fresh], np.int64))
        # every message stays a raw event, also a redelivery: the batch keeps all raw payloads
        readings = rb.take(take) if not take.all() else rb
        if len(readings):
            result = self.pipeline.ingest(readings, now=received)
        else:  # nothing to ingest (all redelivered, or no reading): the pipeline would not store them
            with write_transaction(self.telemetry) as conn:
                raw_events.store(conn, rb.raw_payloads, rb.source, received)
            result = IngestResult()
        out.readings = result
        out.clock_drift = sum(1 for m in fresh if m.ts > received + DRIFT_S)
        out.out_of_order = sum(result.late_by_series.get(m.device.series.get(m.device.method.energy_point), 0)
                               for m in {id(m.device): m for m in fresh}.values())
        bad = {(q.series_id, q.ts) for q in result.quarantined}
        taken = []
        for m in fresh:
            rid = raw_ids[m.raw_index]
            if bad and any((s, m.ts) in bad for s in m.device.series.values()):
                out.quarantined += 1  # its identity is not recorded: a corrected copy may follow
                continue
            if rid in seen_raw:
                out.repeats += 1  # the same document again: its readings were no-ops
            else:
                out.accepted += 1
                seen_raw.add(rid)  # a copy later in this batch is a repeat
            taken.append(m)
        keyed = [m for m in taken if m.key is not None]
        if keyed:
            with write_transaction(self.telemetry) as conn:
                device_telemetry.record_keys(conn, [
                    (m.key.asset_id, m.key.sequence_no, m.key.uptime_s, m.key.ts, raw_ids[m.raw_index], received)
                    for m in keyed])

    @staticmethod
    def _redeliveries(conn, messages: Sequence[DeviceMessage]) -> set[int]:
        """Indexes of messages taken in before (or earlier in the same batch)."""
        keyed = [m for m in messages if m.key is not None]
        if not keyed:
            return set()
        known: dict[tuple[int, int, int], list] = {}
        for k in device_telemetry.stored_keys(conn, [m.key for m in keyed]):
            known.setdefault((k.asset_id, k.sequence_no, k.uptime_s), []).append(k)
        out = set()
        for m in keyed:
            group = known.setdefault((m.key.asset_id, m.key.sequence_no, m.key.uptime_s), [])
            if any(same_message(m.key, k) for k in group):
                out.add(m.index)
            else:
                group.append(m.key)  # a later copy in this batch is a redelivery of this one
        return out

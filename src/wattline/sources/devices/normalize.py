"""Validated device payloads -> a :class:`ReadingBatch` for the pipeline (the device
side of the source contract), through a read-only :class:`DeviceResolver`.

Each payload of a registered device gives up to three readings, in canonical units:
``energy_total`` (kWh, from ``energy_wh_total`` in Wh; counter devices only),
``power`` (kW, from ``power_w`` in W) and ``switch_state`` (1 = its switch on). Every
reading links back to its payload, kept untouched. The registry decides which
classroom a device is in: a payload naming another one is noted, not followed.

A payload that cannot go to the ledger now is *kept* instead, with the reason: one
from a device the registry does not know (it is replayed once the device is
registered), or one whose device clock is far ahead of its arrival.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from wattline.domain import devices as D
from wattline.domain.devices import FUTURE, UNKNOWN_DEVICE, DeviceBatch, DeviceMessage, KeptMessage
from wattline.domain.metrics import MetricType, to_canonical_factor
from wattline.domain.readings import ReadingBatch

from .payload import TelemetryPayload

WH_TO_KWH = to_canonical_factor("Wh", MetricType.COUNTER)
W_TO_KW = to_canonical_factor("W", MetricType.POWER)

__all__ = ("DeviceBatch", "DeviceMessage", "KeptMessage", "normalize")


def normalize(payloads: Sequence[TelemetryPayload], raws: Sequence[Any], resolver: D.DeviceResolver, *,
              now: int, source: str) -> DeviceBatch:
    """The readings of ``payloads`` (``raws[i]`` is payload ``i`` exactly as it arrived).

    ``now``: arrival time, UTC epoch seconds (a device time more than
    :data:`~wattline.domain.devices.MAX_FUTURE_S` after it is kept as ``future``).
    """
    if len(payloads) != len(raws):
        raise ValueError("one raw payload per payload")
    found: dict[tuple[str, str], D.RegisteredDevice | None] = {}
    sid: list[int] = []
    ts: list[int] = []
    val: list[float] = []
    idx: list[int] = []
    kept_raws: list[Any] = []
    out = DeviceBatch(ReadingBatch.empty(source))
    for i, (p, raw) in enumerate(zip(payloads, raws)):
        name = (p.esp32_name, p.device_id)
        if name not in found:  # one lookup per device, not per message
            found[name] = resolver.resolve(*name)
        device = found[name]
        t = p.ts
        if device is None:
            out.kept.append(KeptMessage(i, p.esp32_name, p.device_id, t, UNKNOWN_DEVICE,
                                        f"unknown device {D.device_asset_name(*name)!r}", raw))
            continue
        if t > now + D.MAX_FUTURE_S:
            out.kept.append(KeptMessage(i, p.esp32_name, p.device_id, t, FUTURE,
                                        f"device time {t - now} s ahead of arrival", raw))
            continue
        r = len(kept_raws)
        kept_raws.append(raw)
        for key, value in _values(p, device):
            series = device.series.get(key)
            if series is not None:
                sid.append(series)
                ts.append(t)
                val.append(value)
                idx.append(r)
        key = (D.MessageKey(device.asset_id, p.sequence_no, p.uptime_seconds, t)
               if p.sequence_no is not None and p.uptime_seconds is not None else None)
        mismatch = p.classroom is not None and p.classroom != device.classroom
        out.messages.append(DeviceMessage(i, r, device, t, key, mismatch))
    out.batch = ReadingBatch(np.array(sid, np.int64), np.array(ts, np.int64), np.array(val, np.float64),
                             np.array(idx, np.int64), kept_raws, source)
    return out


def _values(p: TelemetryPayload, device: D.RegisteredDevice):
    """(point key, value in the canonical unit) of what the payload measures."""
    if p.energy_wh_total is not None and device.method is D.EnergyMethod.COUNTER:
        yield D.ENERGY_TOTAL, p.energy_wh_total * WH_TO_KWH
    if p.power_w is not None:
        yield D.POWER, p.power_w * W_TO_KW
    state = D.switch_on(p.switch_state, device.switch)
    if state is not None:
        yield D.SWITCH_STATE, state

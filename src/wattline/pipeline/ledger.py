"""Energy ledger derivation: pure functions over one series' sorted readings.

Energies are integers in milliwatt-hours (1 kWh = 1,000,000 mWh) so that every
later sum is exact. Counter values are converted once, per reading, and deltas are
differences of those integers, so the ledger total equals last - first exactly.

Counter rules (rule 3), with ``ref`` the high-water mark since the last reset:

* ``v >= ref``: normal, ``delta = v - ref``, ``ref = v``;
* ``v < reset_ratio * ref``: a reset (or a wrap for a fixed-width counter):
  energy after it counts from zero, ``delta = v`` (wrap: ``v + width - ref``),
  marked with ``RESET``/``WRAP``;
* otherwise a dip: noise, ``delta = 0``, ``ref`` unchanged so the recovery adds
  nothing either; marked ``DIP``.

This is Home Assistant's statistics rule (a drop to below 90 % is a reset).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wattline.pipeline.quality import CONFIDENCE, GAP_CONFIDENCE, GAP_FACTOR, Flag, Method

MILLI_WH_PER_KWH = 1_000_000


@dataclass(frozen=True)
class SeriesRules:
    """What the ledger needs to know about a series (from its point)."""

    method: Method
    reset_ratio: float = 0.9
    wrap_milli_wh: int | None = None
    expected_interval_s: int = 900


@dataclass
class LedgerRows:
    """Columns of ledger entries for one series, ordered by ``end_ts``."""

    start_ts: np.ndarray
    end_ts: np.ndarray
    delta: np.ndarray  # int64 milli-Wh
    flags: np.ndarray  # int64
    confidence: np.ndarray  # float64
    ref: np.ndarray  # int64 counter high-water after the entry (-1 when not a counter)

    def __len__(self) -> int:
        return len(self.end_ts)


def kwh_to_milli(values_kwh: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(values_kwh, dtype=np.float64) * MILLI_WH_PER_KWH).astype(np.int64)


def derive(
    ts: np.ndarray,
    values: np.ndarray,
    rules: SeriesRules,
    prev_ts: int | None = None,
    prev_value: float | None = None,
    prev_ref: int | None = None,
) -> LedgerRows:
    """Ledger entries ending at each of ``ts`` (sorted, unique).

    ``prev_*`` describe the reading just before ``ts[0]`` (and, for counters, the
    high-water mark after it); without it the first reading opens the series and
    gets no entry (counter, power) — an interval-energy reading always has one.
    """
    ts = np.asarray(ts, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if rules.method is Method.INTERVAL_ENERGY:
        return _interval_energy(ts, values, rules)
    if prev_ts is not None:
        all_ts = np.concatenate(([prev_ts], ts))
        all_v = np.concatenate(([prev_value], values))
    else:
        all_ts, all_v = ts, values
    if len(all_ts) < 2:
        return _empty()
    start, end = all_ts[:-1], all_ts[1:]
    if rules.method is Method.POWER_INTEGRATION:
        return _power(start, end, all_v, rules)
    milli = kwh_to_milli(all_v)
    first_ref = prev_ref if prev_ts is not None and prev_ref is not None else int(milli[0])
    delta, flags, ref = _counter(milli, first_ref, rules)
    return _finish(start, end, delta, flags, ref, Method.COUNTER, rules)


def _counter(milli: np.ndarray, first_ref: int, rules: SeriesRules):
    """Deltas for counter readings ``milli[1:]`` following ``milli[0]``."""
    nxt = milli[1:]
    # Fast path: no value below the running high-water mark means no reset, no dip.
    running = np.maximum.accumulate(np.concatenate(([first_ref], nxt)))
    if np.all(nxt >= running[:-1]):
        delta = np.diff(np.concatenate(([first_ref], nxt)))
        return delta.astype(np.int64), np.zeros(len(nxt), np.int64), nxt.astype(np.int64)
    n = len(nxt)
    delta = np.empty(n, np.int64)
    flags = np.zeros(n, np.int64)
    refs = np.empty(n, np.int64)
    ref = int(first_ref)
    ratio, wrap = rules.reset_ratio, rules.wrap_milli_wh
    for i, v in enumerate(nxt.tolist()):
        if v >= ref:
            delta[i] = v - ref
            ref = v
        elif v < ratio * ref:
            if wrap:
                delta[i] = v + wrap - ref
                flags[i] = Flag.WRAP
            else:
                delta[i] = v
                flags[i] = Flag.RESET
            ref = v
        else:
            delta[i] = 0
            flags[i] = Flag.DIP
        refs[i] = ref
    return delta, flags, refs


def _power(start: np.ndarray, end: np.ndarray, kw: np.ndarray, rules: SeriesRules) -> LedgerRows:
    """Trapezoid integration of power (kW) between consecutive readings."""
    hours = (end - start) / 3600.0
    kwh = (kw[:-1] + kw[1:]) / 2.0 * hours
    delta = kwh_to_milli(kwh)
    flags = np.full(len(end), int(Flag.LOW_CONFIDENCE), np.int64)
    ref = np.full(len(end), -1, np.int64)
    return _finish(start, end, delta, flags, ref, Method.POWER_INTEGRATION, rules)


def _interval_energy(ts: np.ndarray, kwh: np.ndarray, rules: SeriesRules) -> LedgerRows:
    start = ts - rules.expected_interval_s
    delta = kwh_to_milli(kwh)
    n = len(ts)
    return LedgerRows(
        start, ts, delta, np.zeros(n, np.int64),
        np.full(n, CONFIDENCE[Method.INTERVAL_ENERGY]), np.full(n, -1, np.int64),
    )


def _finish(start, end, delta, flags, ref, method: Method, rules: SeriesRules) -> LedgerRows:
    gap = (end - start) > GAP_FACTOR * rules.expected_interval_s
    flags = flags | np.where(gap, int(Flag.GAP), 0)
    conf = np.full(len(end), CONFIDENCE[method])
    conf = np.where(gap, np.minimum(conf, GAP_CONFIDENCE), conf)
    return LedgerRows(start.astype(np.int64), end.astype(np.int64), delta.astype(np.int64),
                      flags.astype(np.int64), conf, ref.astype(np.int64))


def _empty() -> LedgerRows:
    z = np.zeros(0, np.int64)
    return LedgerRows(z, z, z, z, np.zeros(0), z)

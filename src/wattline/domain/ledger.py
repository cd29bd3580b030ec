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

from wattline.domain.quality import CONFIDENCE, GAP_CONFIDENCE, GAP_FACTOR, Flag, Method

MILLI_WH_PER_KWH = 1_000_000


@dataclass(frozen=True)
class SeriesRules:
    """What the ledger needs to know about a series (from its point).

    Attributes
    ----------
    method : Method
        Counter, interval energy or power integration.
    reset_ratio : float
        A counter value below ``reset_ratio`` times the high-water mark is a reset
        (dimensionless, 0..1); a smaller drop is a dip.
    wrap_milli_wh : int or None
        Width of a fixed-width counter, milli-Wh (None: the counter does not wrap).
    expected_interval_s : int
        Expected time between readings, seconds; an entry longer than
        ``GAP_FACTOR`` times this is a gap.
    """

    method: Method
    reset_ratio: float = 0.9
    wrap_milli_wh: int | None = None
    expected_interval_s: int = 900


@dataclass
class LedgerRows:
    """Columns of ledger entries for one series, ordered by ``end_ts`` (UTC epoch
    seconds; ``delta`` and ``ref`` in milli-Wh)."""

    start_ts: np.ndarray
    end_ts: np.ndarray
    delta: np.ndarray  # int64 milli-Wh
    flags: np.ndarray  # int64
    confidence: np.ndarray  # float64
    ref: np.ndarray  # int64 counter high-water after the entry (-1 when not a counter)
    on_time: np.ndarray | None = None  # int64 switch-on seconds (-1 unknown); None: no switch

    def __len__(self) -> int:
        return len(self.end_ts)


def kwh_to_milli(values_kwh: np.ndarray) -> np.ndarray:
    """Energies in kWh (float) as integer milli-Wh, rounded to the nearest (half to even).

    Parameters
    ----------
    values_kwh : array-like of float
        Energy, kWh.

    Returns
    -------
    numpy.ndarray of int64
        Energy, milli-Wh (1 kWh = 1,000,000 mWh).
    """
    return np.rint(np.asarray(values_kwh, dtype=np.float64) * MILLI_WH_PER_KWH).astype(np.int64)


def derive(
    ts: np.ndarray,
    values: np.ndarray,
    rules: SeriesRules,
    prev_ts: int | None = None,
    prev_value: float | None = None,
    prev_ref: int | None = None,
) -> LedgerRows:
    """Ledger entries of one series ending at its readings.

    Parameters
    ----------
    ts : numpy.ndarray of int64
        Reading instants, UTC epoch seconds, sorted and unique.
    values : numpy.ndarray of float64
        Readings in the canonical unit: kWh for counters and interval energy, kW
        for power.
    rules : SeriesRules
        The series' method, reset ratio, wrap width and expected interval.
    prev_ts : int, optional
        The reading just before ``ts[0]``, UTC epoch seconds. Without it the first
        reading opens the series and gets no entry (counter, power); an
        interval-energy reading always has one.
    prev_value : float, optional
        That reading's value (kWh or kW).
    prev_ref : int, optional
        For a counter, the high-water mark after that reading, milli-Wh (default:
        its own value).

    Returns
    -------
    LedgerRows
        One entry per reading that ends one: start and end (UTC epoch seconds),
        delta (milli-Wh, never negative for a counter), ``Flag`` bits, confidence
        (0..1) and the counter's high-water mark after it (milli-Wh; -1 otherwise).
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


@dataclass
class AlignedLedger:
    """Ledger entries of many series at once, one slot per reading: slot i holds the
    entry ending at reading i when ``has[i]`` (a series' first reading and metrics
    without energy have none). Instants in UTC epoch seconds, ``delta`` and ``ref``
    in milli-Wh, ``flags`` ``Flag`` bits; ``method`` is -1 where there is no entry."""

    has: np.ndarray  # bool
    start_ts: np.ndarray
    delta: np.ndarray
    flags: np.ndarray
    confidence: np.ndarray
    ref: np.ndarray
    method: np.ndarray
    on_time: np.ndarray | None = None  # switch-on seconds, -1 unknown (set by the switch rule)

    def entries(self, series_id: np.ndarray, ts: np.ndarray) -> dict[str, np.ndarray]:
        """The entries as columns (series_id, start_ts, end_ts, delta, flags, on_time)."""
        h = self.has
        on = np.full(len(ts), -1, np.int64) if self.on_time is None else self.on_time
        return {"series_id": series_id[h], "start_ts": self.start_ts[h], "end_ts": ts[h],
                "delta": self.delta[h], "flags": self.flags[h], "on_time": on[h]}


def derive_appended(
    ts: np.ndarray,
    values: np.ndarray,
    seg_starts: np.ndarray,
    rules: list[SeriesRules | None],
    prev_ts: list[int | None],
    prev_value: list[float | None],
    prev_ref: list[int | None],
) -> AlignedLedger:
    """:func:`derive` for many series in one vectorised pass.

    Parameters
    ----------
    ts : numpy.ndarray of int64
        Reading instants of every series one after another, UTC epoch seconds;
        sorted and unique within each series.
    values : numpy.ndarray of float64
        Readings in the canonical unit (kWh or kW).
    seg_starts : numpy.ndarray of int64
        Index in ``ts`` where each series' segment starts.
    rules : list of SeriesRules or None
        Per segment; None for a metric without energy (soc, voltage...).
    prev_ts, prev_value, prev_ref : list
        Per segment, as for :func:`derive` (UTC epoch seconds, kWh or kW, milli-Wh).

    Returns
    -------
    AlignedLedger
        One slot per reading. It equals calling :func:`derive` on each segment — bit
        for bit: the same float expressions run element-wise, and a counter segment
        with a reset or dip (rare) is handed to :func:`derive` itself.
    """
    ts = np.asarray(ts, np.int64)
    values = np.asarray(values, np.float64)
    n, k = len(ts), len(seg_starts)
    lengths = np.diff(np.append(seg_starts, n))
    seg = np.repeat(np.arange(k), lengths)
    first = np.zeros(n, bool)
    first[seg_starts] = True

    code = np.array([-1 if r is None else int(r.method) for r in rules], np.int64)[seg]
    expected = np.array([900 if r is None else r.expected_interval_s for r in rules], np.int64)[seg]
    has_prev = np.array([p is not None for p in prev_ts], bool)
    p_ts = np.array([p if p is not None else 0 for p in prev_ts], np.int64)
    p_v = np.array([v if v is not None else 0.0 for v in prev_value], np.float64)

    # the reading before each reading: its predecessor, or the segment's stored neighbour
    before_ts = np.r_[np.int64(0), ts[:-1]]
    before_v = np.r_[0.0, values[:-1]]
    before_ts[seg_starts] = p_ts
    before_v[seg_starts] = p_v
    has_before = ~first
    has_before[seg_starts] = has_prev

    out = AlignedLedger(
        has=np.zeros(n, bool), start_ts=np.zeros(n, np.int64), delta=np.zeros(n, np.int64),
        flags=np.zeros(n, np.int64), confidence=np.zeros(n), ref=np.full(n, -1, np.int64), method=code.copy())

    m = code == int(Method.INTERVAL_ENERGY)
    if m.any():
        out.has[m] = True
        out.start_ts[m] = ts[m] - expected[m]
        out.delta[m] = kwh_to_milli(values[m])
        out.confidence[m] = CONFIDENCE[Method.INTERVAL_ENERGY]

    m = (code == int(Method.POWER_INTEGRATION)) & has_before
    if m.any():
        hours = (ts[m] - before_ts[m]) / 3600.0
        kwh = (before_v[m] + values[m]) / 2.0 * hours
        out.delta[m] = kwh_to_milli(kwh)
        out.flags[m] = int(Flag.LOW_CONFIDENCE)
        out.confidence[m] = CONFIDENCE[Method.POWER_INTEGRATION]
        out.has[m] = True
        out.start_ts[m] = before_ts[m]

    counter = code == int(Method.COUNTER)
    if counter.any():
        milli = kwh_to_milli(values)
        before_milli = np.r_[np.int64(0), milli[:-1]]
        # after the stored neighbour: its high-water mark, or (as in derive) its own value
        has_ref = np.array([r is not None for r in prev_ref], bool)
        stored_ref = np.array([r if r is not None else 0 for r in prev_ref], np.int64)
        before_milli[seg_starts] = np.where(has_ref, stored_ref, kwh_to_milli(p_v))
        m = counter & has_before
        delta = milli - before_milli
        out.delta[m] = delta[m]
        out.ref[counter] = milli[counter]
        out.confidence[m] = CONFIDENCE[Method.COUNTER]
        out.has[m] = True
        out.start_ts[m] = before_ts[m]
        # a drop anywhere in a segment: resets and dips need the sequential rule
        slow = np.unique(seg[m & (delta < 0)])
        for s in slow.tolist():
            a, b = int(seg_starts[s]), int(seg_starts[s]) + int(lengths[s])
            lr = derive(ts[a:b], values[a:b], rules[s], prev_ts[s], prev_value[s], prev_ref[s])
            at = a + np.searchsorted(ts[a:b], lr.end_ts)
            out.has[a:b] = False
            out.ref[a:b] = milli[a:b]
            out.has[at], out.start_ts[at], out.delta[at] = True, lr.start_ts, lr.delta
            out.flags[at], out.confidence[at], out.ref[at] = lr.flags, lr.confidence, lr.ref

    # gaps: counter and power entries only (an interval reading states its own span)
    g = out.has & (code != int(Method.INTERVAL_ENERGY)) & ((ts - out.start_ts) > GAP_FACTOR * expected)
    out.flags[g] |= int(Flag.GAP)
    out.confidence[g] = np.minimum(out.confidence[g], GAP_CONFIDENCE)
    return out


# -- switch state (metered devices) ---------------------------------------------------

SWITCH_POINT = "switch_state"  # a point of this key on an asset gates its energy series


@dataclass
class SwitchedEntries:
    """Ledger entries after the switch rule: ``delta`` (milli-Wh), ``flags`` and
    ``on_time`` (seconds of each entry with the switch on; -1 where the state is unknown)."""

    delta: np.ndarray
    flags: np.ndarray
    on_time: np.ndarray


def apply_switch(start_ts: np.ndarray, end_ts: np.ndarray, delta: np.ndarray, flags: np.ndarray,
                 method: np.ndarray, start_power_kw: np.ndarray, state: np.ndarray) -> SwitchedEntries:
    """The switch rule of a device's energy entries.

    The state reported with a reading holds until the next reading, so an entry
    (start, end] is wholly on or wholly off by the state reported at its start.

    * ``on_time`` is the entry's length when on, 0 when off, -1 when no state is known;
    * power-integrated energy counts only on-time: the power reported at the start
      held over the on-time (the same sample-and-hold as the state), 0 when off;
    * metered (counter) energy while off is kept as measured and flagged
      ``SWITCHED_OFF`` for review.

    Parameters
    ----------
    start_ts, end_ts : numpy.ndarray of int64
        Entry bounds, UTC epoch seconds.
    delta : numpy.ndarray of int64
        Energy as derived without the switch, milli-Wh.
    flags : numpy.ndarray of int64
        ``Flag`` bits.
    method : numpy.ndarray of int64
        ``Method`` of each entry.
    start_power_kw : numpy.ndarray of float64
        For power-integrated entries, the power reported at the start, kW (ignored
        otherwise).
    state : numpy.ndarray of float64
        Switch state reported at or before each entry's start: 1 on, 0 off, NaN unknown.

    Returns
    -------
    SwitchedEntries
    """
    start_ts = np.asarray(start_ts, np.int64)
    span = np.asarray(end_ts, np.int64) - start_ts
    state = np.asarray(state, np.float64)
    known = ~np.isnan(state)
    on = known & (state >= 0.5)
    off = known & ~on
    on_time = np.where(on, span, np.where(off, 0, -1)).astype(np.int64)
    delta = np.asarray(delta, np.int64).copy()
    flags = np.asarray(flags, np.int64).copy()
    power = (np.asarray(method, np.int64) == int(Method.POWER_INTEGRATION)) & known
    if power.any():
        held = kwh_to_milli(np.asarray(start_power_kw, np.float64)[power] * span[power] / 3600.0)
        delta[power] = np.where(on[power], held, 0)
    metered_off = off & (np.asarray(method, np.int64) == int(Method.COUNTER)) & (delta > 0)
    flags[metered_off] |= int(Flag.SWITCHED_OFF)
    return SwitchedEntries(delta, flags, on_time)


def states_at(instants: np.ndarray, state_ts: np.ndarray, state_values: np.ndarray) -> np.ndarray:
    """The switch state holding at each instant: the latest state reported at or before it.

    Parameters
    ----------
    instants : numpy.ndarray of int64
        UTC epoch seconds.
    state_ts, state_values : numpy.ndarray
        Reported states (UTC epoch seconds, sorted and unique; 1 on, 0 off).

    Returns
    -------
    numpy.ndarray of float64
        1.0, 0.0, or NaN before the first report.
    """
    instants = np.asarray(instants, np.int64)
    if len(state_ts) == 0:
        return np.full(len(instants), np.nan)
    at = np.searchsorted(np.asarray(state_ts, np.int64), instants, side="right") - 1
    out = np.asarray(state_values, np.float64)[np.maximum(at, 0)]
    return np.where(at >= 0, out, np.nan)

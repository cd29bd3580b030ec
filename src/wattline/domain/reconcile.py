"""Reconciliation rules: what a night's check of one device finds (pure functions).

Every instant is a UTC epoch second (int64); energies are milli-Wh. The inputs are
numpy columns read by ``store.reconcile_queries``; each rule returns
:class:`Finding` rows, which ``jobs.reconcile`` either fixes (re-aggregation) or
turns into review items. A finding's :func:`dedup_key` names the rule, the device
and the local day checked, so a second run over the same night opens nothing new.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from wattline.domain.quality import Flag

SILENCE_S = 600  # a spell longer than this without a message is a missing heartbeat
GAP_S = 600  # a ledger entry flagged GAP longer than this is a gap to review
MAX_LISTED = 20  # spells / entries listed in a finding's details (the count is complete)

MISSING_HEARTBEAT = "missing_heartbeat"
GAP = "gap"
OUT_OF_ORDER = "out_of_order"
ENERGY_WHILE_OFF = "energy_while_off"
AGGREGATE_MISMATCH = "aggregate_mismatch"
UNKNOWN_DEVICE = "unknown_device"
KINDS = (MISSING_HEARTBEAT, GAP, OUT_OF_ORDER, ENERGY_WHILE_OFF, AGGREGATE_MISMATCH, UNKNOWN_DEVICE)
# what re-aggregation repairs: the stored buckets are re-derived from the ledger, and the
# ledger itself is order-independent, so an out-of-order burst only needs its range rebuilt
FIXABLE = frozenset({AGGREGATE_MISMATCH, OUT_OF_ORDER})


@dataclass(frozen=True)
class Finding:
    """One thing found for one device (or controller) on one local day.

    ``period_start``/``period_end``: the span it concerns (UTC epoch s);
    ``day``: the organization-local date checked (ISO), part of the dedup key."""

    kind: str
    day: str
    period_start: int
    period_end: int
    asset_id: int | None = None
    esp32_name: str | None = None
    classroom_id: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fixable(self) -> bool:
        return self.kind in FIXABLE


def dedup_key(f: Finding) -> str:
    """One item per (rule, device or controller, local day)."""
    who = f"asset:{f.asset_id}" if f.asset_id is not None else f"esp32:{f.esp32_name}"
    if f.kind == UNKNOWN_DEVICE:
        who += f"/{f.details.get('device_id')}"
    return f"{f.kind}:{who}:{f.day}"


def _spans(starts: np.ndarray, ends: np.ndarray) -> list[list[int]]:
    return [[int(a), int(b)] for a, b in zip(starts[:MAX_LISTED].tolist(), ends[:MAX_LISTED].tolist())]


def silent_spells(message_ts: np.ndarray, start: int, end: int, limit_s: int = SILENCE_S) -> tuple[np.ndarray, np.ndarray]:
    """Spells of [start, end) longer than ``limit_s`` seconds with no message.

    ``message_ts``: instants of the device's messages (any order, duplicates allowed).
    The edges count: from ``start`` to the first message and from the last to ``end``.
    Returns (spell starts, spell ends)."""
    t = np.unique(np.asarray(message_ts, np.int64))
    t = t[(t >= start) & (t < end)]
    edges = np.concatenate([[start], t, [end]]).astype(np.int64)
    long = np.diff(edges) > limit_s
    return edges[:-1][long], edges[1:][long]


def missing_heartbeats(message_ts: np.ndarray, start: int, end: int, *, day: str, asset_id: int,
                       esp32_name: str | None, classroom_id: int | None) -> list[Finding]:
    """The device's silent spells (:func:`silent_spells`) as one finding."""
    a, b = silent_spells(message_ts, start, end)
    if not len(a):
        return []
    return [Finding(MISSING_HEARTBEAT, day, int(a[0]), int(b[-1]), asset_id, esp32_name, classroom_id,
                    {"source": "messages", "spells": int(len(a)), "silent_s": int((b - a).sum()),
                     "listed": _spans(a, b)})]


def offline_spells(events: Sequence[tuple[int, str]], before: str | None, start: int, end: int,
                   limit_s: int = SILENCE_S) -> list[list[int]]:
    """Spells of [start, end) longer than ``limit_s`` during which the controller was
    offline, from its status changes.

    ``events``: (instant, "online" | "offline") in [start, end), any order; ``before``:
    its status at ``start`` (the last change before it; None: unknown, taken as online)."""
    spells, down = [], start if before == "offline" else None
    for ts, status in sorted(events):
        if status == "offline" and down is None:
            down = int(ts)
        elif status == "online" and down is not None:
            spells.append([down, int(ts)])
            down = None
    if down is not None:
        spells.append([down, end])
    return [sp for sp in spells if sp[1] - sp[0] > limit_s]


def controller_silence(last_heartbeat_at: int | None, status: str | None, status_at: int | None, start: int,
                       end: int, *, day: str, esp32_name: str,
                       offline: Sequence[Sequence[int]] = ()) -> list[Finding]:
    """A controller silent during [start, end): offline spells from its status history
    (``offline``: :func:`offline_spells`), and silent at the end — its last heartbeat
    more than :data:`SILENCE_S` before ``end`` (the end of the day checked, or now if
    earlier), or offline since before ``end``.

    ``last_heartbeat_at``, ``status``, ``status_at`` are its ``controller_status`` row,
    its latest state: a heartbeat after ``end`` says nothing about the day, an old one
    says it was silent since then; ``last_heartbeat_at`` None means never heard."""
    quiet = last_heartbeat_at is None or last_heartbeat_at < end - SILENCE_S
    down = status == "offline" and status_at is not None and status_at < end
    spells = [list(map(int, sp)) for sp in offline]
    if quiet or down:
        marks = [m for m in ((last_heartbeat_at if quiet else None), (status_at if down else None)) if m is not None]
        spells.append([int(max(start, min(marks))) if marks else start, end])
    if not spells:
        return []
    spells.sort()
    return [Finding(MISSING_HEARTBEAT, day, spells[0][0], max(b for _, b in spells), None, esp32_name, None,
                    {"source": "controller_status", "status": status, "status_at": status_at,
                     "last_heartbeat_at": last_heartbeat_at, "spells": len(spells), "listed": spells[:MAX_LISTED]})]


def unknown_devices(rows: Sequence[tuple[str | None, str | None, int, int, int]], *, day: str) -> list[Finding]:
    """Messages from devices the registry does not know, kept and not yet replayed:
    one finding per (esp32_name, device_id). ``rows``: (esp32_name, device_id, count,
    first and last arrival, UTC epoch s)."""
    return [Finding(UNKNOWN_DEVICE, day, int(first), int(last) + 1, None, esp, None,
                    {"device_id": dev, "messages": int(n),
                     "hint": f"register it: wattline devices add {esp} {dev} --classroom NAME"})
            for esp, dev, n, first, last in rows if esp is not None]


def flagged_entries(kind: str, flag: int, cols: Mapping[str, np.ndarray], *, day: str, asset_id: int,
                    esp32_name: str | None, classroom_id: int | None, min_s: int = 0) -> list[Finding]:
    """Ledger entries with ``flag`` (and longer than ``min_s`` seconds) as one finding.

    ``cols``: ``start_ts``, ``end_ts``, ``delta`` (milli-Wh), ``flags`` of the device's
    entries of the day."""
    s, e = np.asarray(cols["start_ts"], np.int64), np.asarray(cols["end_ts"], np.int64)
    d, fl = np.asarray(cols["delta"], np.int64), np.asarray(cols["flags"], np.int64)
    hit = ((fl & int(flag)) != 0) & ((e - s) > min_s)
    if not hit.any():
        return []
    s, e, d = s[hit], e[hit], d[hit]
    order = np.argsort(s, kind="stable")
    s, e, d = s[order], e[order], d[order]
    return [Finding(kind, day, int(s[0]), int(e.max()), asset_id, esp32_name, classroom_id,
                    {"entries": int(len(s)), "seconds": int((e - s).sum()), "energy_milli_wh": int(d.sum()),
                     "listed": _spans(s, e)})]


def gaps(cols: Mapping[str, np.ndarray], **who) -> list[Finding]:
    """Entries flagged ``Flag.GAP`` spanning more than :data:`GAP_S` seconds."""
    return flagged_entries(GAP, Flag.GAP, cols, min_s=GAP_S, **who)


def energy_while_off(cols: Mapping[str, np.ndarray], **who) -> list[Finding]:
    """Entries flagged ``Flag.SWITCHED_OFF``: metered energy while the switch was off."""
    return flagged_entries(ENERGY_WHILE_OFF, Flag.SWITCHED_OFF, cols, **who)


def late_messages(ts: np.ndarray, received_at: np.ndarray) -> np.ndarray:
    """Which messages arrived after a message with a later device time.

    ``ts``: device time; ``received_at``: arrival (s). Messages arriving in the same
    second are one delivery whose inner order is unknown, so only an earlier arrival
    makes a message late. Returns a mask in arrival order (see the order returned by
    :func:`arrival_order`)."""
    r = np.asarray(received_at, np.int64)
    t = np.asarray(ts, np.int64)
    if not len(t):
        return np.zeros(0, bool)
    first = np.r_[True, r[1:] != r[:-1]]  # each arrival second's first message
    group = np.cumsum(first) - 1
    gmax = np.maximum.reduceat(t, np.flatnonzero(first))
    before = np.r_[np.iinfo(np.int64).min, np.maximum.accumulate(gmax)[:-1]]  # max ts of earlier arrivals
    return t < before[group]


def arrival_order(ts: np.ndarray, received_at: np.ndarray) -> np.ndarray:
    """Indexes sorting messages by (arrival, device time)."""
    return np.lexsort((np.asarray(ts, np.int64), np.asarray(received_at, np.int64)))


def out_of_order_bursts(ts: np.ndarray, received_at: np.ndarray, *, day: str, asset_id: int,
                        esp32_name: str | None, classroom_id: int | None) -> list[Finding]:
    """Runs of consecutive late messages (:func:`late_messages`) as one finding whose
    period is the device-time span they cover."""
    o = arrival_order(ts, received_at)
    t, r = np.asarray(ts, np.int64)[o], np.asarray(received_at, np.int64)[o]
    late = late_messages(t, r)
    if not late.any():
        return []
    starts = np.flatnonzero(late & ~np.r_[False, late[:-1]])
    ends = np.flatnonzero(late & ~np.r_[late[1:], False])
    bursts = [{"messages": int(b - a + 1), "ts": [int(t[a:b + 1].min()), int(t[a:b + 1].max())],
               "received": [int(r[a]), int(r[b])]} for a, b in zip(starts.tolist(), ends.tolist())]
    return [Finding(OUT_OF_ORDER, day, int(t[late].min()), int(t[late].max()) + 1, asset_id, esp32_name,
                    classroom_id, {"bursts": len(bursts), "messages": int(late.sum()),
                                   "listed": bursts[:MAX_LISTED]})]


# stored bucket columns compared exactly, and those compared up to float rounding
EXACT_COLUMNS = ("bucket_end", "energy_milli_wh", "ledger_count", "value_count", "last_ts", "flags",
                 "on_time_s", "hc_energy_milli_wh")
FLOAT_COLUMNS = ("value_min", "value_max", "value_sum", "value_last")


def _same(a: Any, b: Any, exact: bool) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if exact:
        return int(a) == int(b)
    return bool(np.isclose(float(a), float(b), rtol=1e-9, atol=1e-9))


def bucket_differences(stored: Mapping[tuple, Mapping[str, Any]],
                       rebuilt: Mapping[tuple, Mapping[str, Any]]) -> list[dict]:
    """Buckets whose stored row differs from the one rebuilt from the ledger.

    Both map (series_id, period, bucket_start) to a row (column -> value); a column
    missing from either side is not compared. Returns one dict per differing bucket:
    ``series_id, period, bucket_start`` and ``columns`` {name: [stored, rebuilt]}."""
    out = []
    for key in sorted(set(stored) | set(rebuilt)):
        a, b = stored.get(key), rebuilt.get(key)
        if a is None or b is None:
            if b is not None and not b.get("ledger_count") and not b.get("value_count"):
                continue  # an empty bucket written for the first time is no difference
            out.append({"series_id": key[0], "period": key[1], "bucket_start": key[2],
                        "columns": {"row": ["absent" if a is None else "present",
                                            "absent" if b is None else "present"]}})
            continue
        diff = {}
        for cols, exact in ((EXACT_COLUMNS, True), (FLOAT_COLUMNS, False)):
            for c in cols:
                if c in a and c in b and not _same(a[c], b[c], exact):
                    diff[c] = [a[c], b[c]]
        if diff:
            out.append({"series_id": key[0], "period": key[1], "bucket_start": key[2], "columns": diff})
    return out


def aggregate_mismatch(differences: Sequence[dict], *, day: str, start: int, end: int, asset_id: int,
                       esp32_name: str | None, classroom_id: int | None) -> list[Finding]:
    """The device's differing buckets (:func:`bucket_differences`) as one finding."""
    if not differences:
        return []
    return [Finding(AGGREGATE_MISMATCH, day, start, end, asset_id, esp32_name, classroom_id,
                    {"buckets": len(differences), "listed": [jsonable(d) for d in differences[:MAX_LISTED]]})]


def jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, (np.integer, bool)):
        return int(v) if not isinstance(v, bool) else v
    if isinstance(v, np.floating):
        return float(v)
    return v

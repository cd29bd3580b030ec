"""Cost rates: which version prices an instant, and an interval split at rate changes.

A cost version is a rate per kWh with an ``effective_from`` instant and a scope:
global, an organization, a group (a classroom, a work order...) or one asset. The rate
of an instant for an asset is that of the **most specific scope** (asset > group >
organization > global) that has a version in effect at that instant; within that
scope, the version with the latest ``effective_from`` at or before the instant. So an
asset's own rate keeps applying after a newer global version, and a version is never
used before its ``effective_from`` (a version dated in the future applies from then).
Ties — two versions of the same scope with the same ``effective_from``, e.g. of two
groups the asset belongs to — go to the higher ``version_id`` (the one created later).

Units: instants are UTC epoch seconds; energy is integer milli-Wh (as in the
ledger); rates are integer micro-units of the currency per kWh (7.50 INR/kWh =
7_500_000); costs are integer micro-units of the currency (1 INR = 1_000_000),
rounded half up once per priced piece: cost = energy_milli_wh * rate / 1_000_000.

A ledger entry that crosses a rate change is split at the change (``price_interval``)
with the same telescoping share of time as bucket pieces, so the pieces' energies add
up to the entry's exactly; each piece is priced at its own rate. Figures that must
agree to the micro-unit (cards, charts, exports) are sums of those priced pieces:
``bucket_costs`` shares each priced piece's cost over the buckets it overlaps by
time, with the same telescoping rounding, so the shares add up to the piece's cost
and every period (5 minutes to a year) and every group adds up exactly.
``tariff`` and ``price_entries`` are the vectorised form of ``rate_at`` and
``price_interval`` for many ledger entries of one asset.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Iterable, Sequence

import numpy as np

from wattline.domain import buckets as B
from wattline.domain.buckets import piece_energy

MICRO = 1_000_000  # micro-units per currency unit; also milli-Wh per kWh


class Scope(enum.IntEnum):
    """Scope of a cost version; a larger value is more specific and wins."""

    GLOBAL = 0
    ORGANIZATION = 1
    GROUP = 2
    ASSET = 3


@dataclass(frozen=True)
class CostVersion:
    """One rate, in effect from an instant, for a scope.

    ``rate_micro_per_kwh``: micro-units of the currency per kWh; ``effective_from``:
    UTC epoch seconds; ``scope_id``: the organization, group or asset id (None for
    global); ``currency``: ISO 4217 code."""

    version_id: int
    rate_micro_per_kwh: int
    effective_from: int
    scope: Scope = Scope.GLOBAL
    scope_id: int | None = None
    currency: str | None = None  # ISO 4217 code of the rate


@dataclass(frozen=True)
class AssetScopes:
    """What an asset belongs to, for matching cost versions to it."""

    asset_id: int
    organization_id: int | None = None
    group_ids: frozenset[int] = frozenset()


@dataclass(frozen=True)
class PricedPiece:
    """A part [start, end) of an interval (UTC epoch seconds) with its energy
    (milli-Wh), the version pricing it (None: no version in effect) and its cost
    (micro-units of the currency; None when unpriced)."""

    start: int
    end: int
    energy_milli_wh: int
    version: CostVersion | None
    cost_micro: int | None


def rate_micro_per_kwh(rate: str | Decimal | int) -> int:
    """A rate given in currency units per kWh (``"7.50"``) as integer micro-units per kWh.

    Parameters
    ----------
    rate : str, Decimal or int
        Currency units per kWh; a float is refused (``0.1`` is not exactly 0.1).

    Returns
    -------
    int
        Micro-units of the currency per kWh (``"7.50"`` -> 7_500_000).

    Raises
    ------
    ValueError
        For a float, a negative, infinite or NaN rate, or one finer than a micro-unit.
    """
    if isinstance(rate, float):
        raise ValueError("give the rate as text or Decimal, not float")
    try:
        value = Decimal(rate.strip() if isinstance(rate, str) else rate)
    except InvalidOperation:
        raise ValueError(f"rate {rate!r} is not a number") from None
    if not value.is_finite():  # NaN would raise on comparison, infinity on int()
        raise ValueError(f"rate {rate!r} must be a finite number")
    micro = value * MICRO
    if micro < 0 or micro != micro.to_integral_value():
        raise ValueError(f"rate {rate!r} must be >= 0 with at most 6 decimals")
    return int(micro)


def money_text(micro: int) -> str:
    """Micro-units of a currency as exact decimal text with at least two decimals.

    Parameters
    ----------
    micro : int
        Micro-units (7_500_000).

    Returns
    -------
    str
        ``"7.50"``; ``"0.321457"``; ``"-1.25"``.
    """
    text = format(Decimal(int(micro)).scaleb(-6).normalize(), "f")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def cost_micro(energy_milli_wh, rate_micro_per_kwh):
    """Cost of an energy at a rate.

    Parameters
    ----------
    energy_milli_wh : int or numpy.ndarray of int64
        Energy, milli-Wh.
    rate_micro_per_kwh : int or numpy.ndarray of int64
        Rate, micro-units of the currency per kWh.

    Returns
    -------
    int or numpy.ndarray of int64
        Cost, micro-units of the currency, rounded half up (towards +infinity):
        ``floor((2 * energy * rate + 10**6) / (2 * 10**6))``. Integer arithmetic only;
        for numpy arrays ``|energy * rate|`` must stay below 4.6e18 (1 GWh at 4,600
        currency units per kWh).
    """
    return (2 * energy_milli_wh * rate_micro_per_kwh + MICRO) // (2 * MICRO)


def _applies(v: CostVersion, scopes: AssetScopes) -> bool:
    if v.scope is Scope.GLOBAL:
        return True
    if v.scope is Scope.ORGANIZATION:
        return v.scope_id is not None and v.scope_id == scopes.organization_id
    if v.scope is Scope.GROUP:
        return v.scope_id in scopes.group_ids
    return v.scope_id == scopes.asset_id


def applicable_versions(versions: Iterable[CostVersion], scopes: AssetScopes) -> list[CostVersion]:
    """The versions that can price the asset ``scopes`` describes (any instant).

    Parameters
    ----------
    versions : iterable of CostVersion
        Versions of every scope.
    scopes : AssetScopes
        The asset, its organization and its groups.

    Returns
    -------
    list of CostVersion
        Those whose scope covers the asset, ordered by (effective_from, version_id).
    """
    return sorted((v for v in versions if _applies(v, scopes)), key=lambda v: (v.effective_from, v.version_id))


def _pick(applicable: Sequence[CostVersion], ts: int) -> CostVersion | None:
    best = None
    for v in applicable:  # ordered by (effective_from, version_id): a later one wins a tie
        if v.effective_from > ts:
            break
        if best is None or v.scope >= best.scope:
            best = v
    return best


def rate_at(versions: Iterable[CostVersion], scopes: AssetScopes, ts: int) -> CostVersion | None:
    """The version pricing an asset's energy at an instant.

    Parameters
    ----------
    versions : iterable of CostVersion
        Versions of every scope.
    scopes : AssetScopes
        The asset, its organization and its groups.
    ts : int
        The instant, UTC epoch seconds.

    Returns
    -------
    CostVersion or None
        Of the most specific scope with a version in effect at ``ts``, the one with
        the latest ``effective_from <= ts`` (ties: the higher ``version_id``); None if
        no version is in effect.
    """
    return _pick(applicable_versions(versions, scopes), int(ts))


def price_interval(versions: Iterable[CostVersion], scopes: AssetScopes, start_ts: int, end_ts: int,
                   energy_milli_wh: int) -> list[PricedPiece]:
    """An energy over [start_ts, end_ts) split at the changes of rate, each piece priced.

    Parameters
    ----------
    versions : iterable of CostVersion
        Versions of every scope.
    scopes : AssetScopes
        The asset, its organization and its groups.
    start_ts, end_ts : int
        The interval, UTC epoch seconds, ``start_ts < end_ts`` (a ledger entry's
        start and end).
    energy_milli_wh : int
        Energy of the interval, milli-Wh.

    Returns
    -------
    list of PricedPiece
        Consecutive pieces covering [start_ts, end_ts), one per stretch priced by one
        version (an instant takes the version of :func:`rate_at`). Energy is shared
        in proportion to time with the ledger's telescoping rounding, so the pieces'
        energies add up to ``energy_milli_wh`` exactly; each piece's cost is
        :func:`cost_micro` of its energy at its rate (None if no version applies).
    """
    start_ts, end_ts = int(start_ts), int(end_ts)
    if end_ts <= start_ts:
        raise ValueError("an interval must end after it starts")
    applicable = applicable_versions(versions, scopes)
    cuts = sorted({v.effective_from for v in applicable if start_ts < v.effective_from < end_ts})
    bounds, chosen = [start_ts], [_pick(applicable, start_ts)]
    for t in cuts:
        v = _pick(applicable, t)
        if v != chosen[-1]:  # a change of version that does not win changes nothing
            bounds.append(t)
            chosen.append(v)
    bounds.append(end_ts)
    n = len(chosen)
    energy = piece_energy(np.full(n, start_ts, np.int64), np.full(n, end_ts, np.int64),
                          np.full(n, int(energy_milli_wh), np.int64),
                          np.array(bounds[:-1], np.int64), np.array(bounds[1:], np.int64)).tolist()
    return [PricedPiece(a, b, e, v, None if v is None else cost_micro(e, v.rate_micro_per_kwh))
            for a, b, e, v in zip(bounds[:-1], bounds[1:], energy, chosen)]


# ------------------------------------------------------------------ many entries at once

NEVER = -(2**62)  # an instant before every version (UTC epoch seconds)
FOREVER = 2**62


@dataclass(frozen=True)
class Tariff:
    """Which version prices one asset, over all time.

    ``versions[i]`` wins from ``starts[i]`` (UTC epoch seconds) until ``starts[i + 1]``;
    ``starts[0]`` is :data:`NEVER` and ``versions[0]`` None (nothing in effect before the
    first version). Consecutive entries differ: a version that never wins is absent."""

    starts: tuple[int, ...] = (NEVER,)
    versions: tuple[CostVersion | None, ...] = (None,)

    def in_effect_during(self, start_ts: int, end_ts: int) -> bool:
        """True if some version prices an instant of [start_ts, end_ts) (UTC epoch s)."""
        for i, v in enumerate(self.versions):
            end = self.starts[i + 1] if i + 1 < len(self.starts) else FOREVER
            if v is not None and self.starts[i] < end_ts and end > start_ts:
                return True
        return False

    def version_at(self, ts: int) -> CostVersion | None:
        """The version pricing instant ``ts`` (UTC epoch s): the same as :func:`rate_at`."""
        i = int(np.searchsorted(np.asarray(self.starts, np.int64), int(ts), side="right")) - 1
        return self.versions[i]


def tariff(versions: Iterable[CostVersion], scopes: AssetScopes) -> Tariff:
    """The :class:`Tariff` of one asset: where the version of :func:`rate_at` changes.

    Parameters
    ----------
    versions : iterable of CostVersion
        Versions of every scope (the order does not matter).
    scopes : AssetScopes
        The asset, its organization and its groups.

    Returns
    -------
    Tariff
        The winning version from each change on (a winner can only change at some
        version's ``effective_from``).
    """
    applicable = applicable_versions(versions, scopes)
    starts, chosen = [NEVER], [None]
    for t in sorted({v.effective_from for v in applicable}):
        v = _pick(applicable, t)
        if v != chosen[-1]:
            starts.append(t)
            chosen.append(v)
    return Tariff(tuple(starts), tuple(chosen))


def _exact_cost(energy: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """:func:`cost_micro` element-wise, in Python integers where int64 could overflow."""
    if len(energy) and int(np.abs(energy).max()) * max(int(rate.max()), 1) > 2**61:
        out = [cost_micro(int(e), int(r)) for e, r in zip(energy.tolist(), rate.tolist())]
        return np.array(out, dtype=object)
    return cost_micro(energy, rate)


def price_entries(tf: Tariff, start_ts, end_ts, energy_milli_wh) -> dict[str, np.ndarray]:
    """Ledger entries of one asset split at its changes of rate, each stretch priced.

    The vectorised :func:`price_interval`: the same stretches, energies and costs.

    Parameters
    ----------
    tf : Tariff
        The asset's tariff.
    start_ts, end_ts : array-like of int
        Each entry's interval [start, end), UTC epoch seconds (``end >= start``; an
        entry of no duration is priced at its start).
    energy_milli_wh : array-like of int
        Each entry's energy, milli-Wh.

    Returns
    -------
    dict of numpy.ndarray
        One row per (entry, stretch of one version): ``entry`` (index of the entry),
        ``start``, ``end`` (UTC epoch seconds, the stretch's part of the entry),
        ``energy`` (milli-Wh; an entry's stretches add up to its energy exactly),
        ``version`` (index into ``tf.versions``), ``priced`` (bool) and ``cost``
        (micro-units of the currency, :func:`cost_micro` of the stretch; 0 where
        unpriced).
    """
    s = np.asarray(start_ts, np.int64)
    e = np.asarray(end_ts, np.int64)
    d = np.asarray(energy_milli_wh, np.int64)
    changes = np.asarray(tf.starts[1:], np.int64)
    i0 = np.searchsorted(changes, s, side="right")  # the version index at the entry's start
    i1 = np.searchsorted(changes, np.maximum(e - 1, s), side="right")  # ... at its last second
    count = i1 - i0 + 1
    idx = np.repeat(np.arange(len(s)), count)
    offset = np.arange(len(idx)) - np.repeat(np.cumsum(count) - count, count)
    k = i0[idx] + offset
    bounds = np.concatenate([[NEVER], changes, [FOREVER]]).astype(np.int64)
    lo, hi = np.maximum(s[idx], bounds[k]), np.minimum(e[idx], bounds[k + 1])
    energy = piece_energy(s[idx], e[idx], d[idx], bounds[k], bounds[k + 1])
    rates = np.array([0 if v is None else v.rate_micro_per_kwh for v in tf.versions], np.int64)[k]
    priced = np.array([v is not None for v in tf.versions], bool)[k]
    cost = np.where(priced, _exact_cost(energy, rates), 0)
    return {"entry": idx, "start": lo, "end": hi, "energy": energy, "version": k, "priced": priced,
            "cost": np.asarray(cost).astype(np.int64)}


@dataclass(frozen=True)
class BucketCost:
    """Cost of one bucket [start, end) (UTC epoch seconds).

    ``cost_micro``: micro-units of ``currency``, None when no version prices any of
    its energy or when its energy is priced in more than one currency;
    ``unpriced_milli_wh``: its energy no version prices; ``notes``: cost quality
    (``no_cost_version``, ``partly_unpriced``, ``mixed_currency``)."""

    start: int
    end: int
    cost_micro: int | None
    currency: str | None
    unpriced_milli_wh: int = 0
    notes: tuple[str, ...] = ()


NO_COST_VERSION = "no_cost_version"  # nothing of the bucket is priced: cost is None
PARTLY_UNPRICED = "partly_unpriced"  # some energy has no version: the cost covers the rest
MIXED_CURRENCY = "mixed_currency"  # priced in several currencies: cost is None


def bucket_costs(entries: dict, tariffs: dict[int, Tariff], tz: str, period: str,
                 wanted: Sequence[tuple[int, int]]) -> list[BucketCost]:
    """Cost of each wanted bucket from the ledger entries of one or more series.

    Every entry is priced by its series' tariff (:func:`price_entries`), once; each
    priced stretch's cost is then shared over the buckets it overlaps in proportion
    to time with the ledger's telescoping rounding (``buckets.piece_energy``). So a
    bucket's cost is the sum of whole stretch costs plus shares of those crossing its
    edges, the shares of a stretch add up to its cost exactly, and a coarser bucket
    costs exactly the sum of the finer buckets inside it (the edges of an hour are
    edges of every 15-minute bucket, a day's of every hour...): hours add up to the
    day, days to the month, members to their group, to the micro-unit.

    Parameters
    ----------
    entries : dict of numpy.ndarray
        ``series_id``, ``start_ts``, ``end_ts`` (UTC epoch seconds) and ``delta``
        (milli-Wh) of the ledger entries overlapping the wanted buckets.
    tariffs : dict of int to Tariff
        The tariff of each series' asset (a series without one is unpriced).
    tz : str
        IANA zone whose wall clock and calendar the buckets follow (a series' own,
        or its group's for a roll-up).
    period : str
        One of ``buckets.PERIODS``.
    wanted : sequence of (int, int)
        The buckets (start, end), UTC epoch seconds, as ``buckets.bucket_range`` gives
        them for ``period`` and ``tz``.

    Returns
    -------
    list of BucketCost
        One per wanted bucket, in order. A bucket without energy costs 0 while some
        series' version is in effect during it, else None.
    """
    sid_all = np.asarray(entries["series_id"], np.int64)
    parts = {k: [] for k in ("series_id", "start_ts", "end_ts", "delta", "flags")}
    currencies: list[str] = []
    for sid in np.unique(sid_all).tolist():
        m = sid_all == sid
        tf = tariffs.get(int(sid), Tariff())
        st = price_entries(tf, np.asarray(entries["start_ts"])[m], np.asarray(entries["end_ts"])[m],
                           np.asarray(entries["delta"])[m])
        code = np.zeros(len(tf.versions), np.int64)  # 0: unpriced, else 1 + index of the currency
        for i, v in enumerate(tf.versions):
            if v is not None:
                cur = v.currency or ""
                if cur not in currencies:
                    currencies.append(cur)
                code[i] = 1 + currencies.index(cur)
        parts["series_id"].append(np.full(len(st["start"]), sid, np.int64))
        parts["start_ts"].append(st["start"])
        parts["end_ts"].append(st["end"])
        # a priced stretch shares its cost, an unpriced one its energy (for the note)
        parts["delta"].append(np.where(st["priced"], st["cost"], st["energy"]))
        parts["flags"].append(code[st["version"]])
    out: list[BucketCost] = []
    if not wanted:
        return out
    n = len(wanted)
    ws = np.array([w[0] for w in wanted], np.int64)
    cost_sum, unpriced_sum = np.zeros(n, np.int64), np.zeros(n, np.int64)
    n_priced = np.zeros(n, np.int64)
    cmin, cmax = np.full(n, 1 << 30, np.int64), np.full(n, -1, np.int64)
    if parts["series_id"] and sum(len(a) for a in parts["series_id"]):
        cols = {k: np.concatenate(v) for k, v in parts.items()}
        tzs = {int(x): tz for x in np.unique(cols["series_id"]).tolist()}
        _sid, b_start, _b_end, share, code, *_rest = B.split_on_grid(cols, tzs, period)
        pos = np.minimum(np.searchsorted(ws, b_start), n - 1)
        inside = ws[pos] == b_start  # pieces of buckets outside the wanted ones are dropped
        pr, un = inside & (code > 0), inside & (code == 0)
        np.add.at(cost_sum, pos[pr], share[pr])
        np.add.at(unpriced_sum, pos[un], share[un])
        n_priced += np.bincount(pos[pr], minlength=n)
        np.minimum.at(cmin, pos[pr], code[pr])
        np.maximum.at(cmax, pos[pr], code[pr])
    for i, (s, e) in enumerate(wanted):
        cost, unpriced = int(cost_sum[i]), int(unpriced_sum[i])
        notes: list[str] = []
        if n_priced[i] and cmin[i] != cmax[i]:
            value, currency = None, None
            notes.append(MIXED_CURRENCY)
        elif n_priced[i]:
            value, currency = cost, currencies[int(cmin[i]) - 1] or None
        elif unpriced == 0 and (running := _in_effect(tariffs, s, e)) is not None:
            value, currency = 0, running.currency
        else:
            value, currency = None, None
            notes.append(NO_COST_VERSION)
        if unpriced and value is not None:
            notes.append(PARTLY_UNPRICED)
        out.append(BucketCost(s, e, value, currency, unpriced, tuple(notes)))
    return out


def _in_effect(tariffs: dict[int, Tariff], start_ts: int, end_ts: int) -> CostVersion | None:
    """A version some series' tariff has in effect during [start_ts, end_ts), if any."""
    for tf in tariffs.values():
        if tf.in_effect_during(start_ts, end_ts):
            v = tf.version_at(start_ts)
            if v is not None:
                return v
            # only versions[0] is None: once a version is in effect, one always is
            return next(x for i, x in enumerate(tf.versions) if x is not None and tf.starts[i] < end_ts)
    return None

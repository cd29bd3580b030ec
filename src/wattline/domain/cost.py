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
agree to the micro-unit (cards, charts, exports) are sums of those priced pieces.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, Sequence

import numpy as np

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
    global)."""

    version_id: int
    rate_micro_per_kwh: int
    effective_from: int
    scope: Scope = Scope.GLOBAL
    scope_id: int | None = None


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
        For a float, a negative rate or one finer than a micro-unit.
    """
    if isinstance(rate, float):
        raise ValueError("give the rate as text or Decimal, not float")
    micro = Decimal(rate) * MICRO
    if micro < 0 or micro != micro.to_integral_value():
        raise ValueError(f"rate {rate!r} must be >= 0 with at most 6 decimals")
    return int(micro)


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

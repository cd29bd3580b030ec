"""The cost-rate rule (domain/cost.py): most specific scope in effect at an instant,
and an interval split at the changes of rate."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings, strategies as st

from wattline.domain.cost import (
    AssetScopes, CostVersion, Scope, cost_micro, price_interval, rate_at, rate_micro_per_kwh,
)

DAY = 86400
T0 = 1_735_669_800  # 2025-01-01T00:00:00+05:30
ASSET = AssetScopes(asset_id=7, organization_id=3, group_ids=frozenset({11, 12}))


def v(version_id, rate, day, scope=Scope.GLOBAL, scope_id=None):
    return CostVersion(version_id, rate, T0 + day * DAY, scope, scope_id)


def test_the_most_specific_scope_in_effect_wins():
    versions = [v(1, 7_000_000, 0), v(2, 7_100_000, 0, Scope.ORGANIZATION, 3),
                v(3, 7_200_000, 0, Scope.GROUP, 11), v(4, 7_300_000, 0, Scope.ASSET, 7)]
    at = T0 + 10 * DAY
    assert rate_at(versions, ASSET, at).version_id == 4
    assert rate_at(versions[:3], ASSET, at).version_id == 3
    assert rate_at(versions[:2], ASSET, at).version_id == 2
    assert rate_at(versions[:1], ASSET, at).version_id == 1
    assert rate_at(list(reversed(versions)), ASSET, at).version_id == 4  # input order is irrelevant


def test_an_older_asset_rate_beats_a_newer_global_one():
    versions = [v(1, 7_000_000, 0), v(2, 9_000_000, 5, Scope.ASSET, 7), v(3, 8_000_000, 20)]
    assert rate_at(versions, ASSET, T0 + 30 * DAY).version_id == 2  # not the latest version overall
    assert rate_at(versions, ASSET, T0 + 2 * DAY).version_id == 1  # before the asset's own rate


def test_a_future_version_applies_from_its_instant_on_not_before():
    versions = [v(1, 7_000_000, 0), v(2, 7_500_000, 10, Scope.ASSET, 7)]
    change = T0 + 10 * DAY
    assert rate_at(versions, ASSET, change - 1).version_id == 1
    assert rate_at(versions, ASSET, change).version_id == 2  # "at or before" the instant
    assert rate_at(versions, ASSET, T0 - 1) is None  # nothing in effect yet


def test_a_tie_goes_to_the_later_created_version_whatever_the_order():
    same_instant = [v(5, 7_000_000, 0, Scope.GROUP, 11), v(9, 8_000_000, 0, Scope.GROUP, 12),
                    v(6, 6_000_000, 0, Scope.GROUP, 12)]
    for _ in range(5):
        random.shuffle(same_instant)
        assert rate_at(same_instant, ASSET, T0 + DAY).version_id == 9


def test_of_two_groups_the_latest_version_wins():
    versions = [v(9, 8_000_000, 0, Scope.GROUP, 12), v(5, 7_000_000, 3, Scope.GROUP, 11)]
    assert rate_at(versions, ASSET, T0 + DAY).version_id == 9
    assert rate_at(versions, ASSET, T0 + 4 * DAY).version_id == 5


def test_versions_of_other_scopes_do_not_apply():
    versions = [v(1, 7_000_000, 0), v(2, 1, 0, Scope.ASSET, 8), v(3, 1, 0, Scope.GROUP, 99),
                v(4, 1, 0, Scope.ORGANIZATION, 4), v(5, 1, 0, Scope.ORGANIZATION, None)]
    assert rate_at(versions, ASSET, T0 + DAY).version_id == 1
    assert rate_at(versions[1:], ASSET, T0 + DAY) is None


def test_an_interval_crossing_two_changes_is_split_at_both():
    # 3 kWh over one hour; the rate changes 15 and 45 minutes in
    start = T0 + 20 * DAY
    versions = [v(1, 7_000_000, 0), CostVersion(2, 8_000_000, start + 900, Scope.ORGANIZATION, 3),
                CostVersion(3, 10_000_000, start + 2700, Scope.ASSET, 7)]
    pieces = price_interval(versions, ASSET, start, start + 3600, 3_000_000)
    assert [(p.start - start, p.end - start) for p in pieces] == [(0, 900), (900, 2700), (2700, 3600)]
    assert [p.version.version_id for p in pieces] == [1, 2, 3]
    assert [p.energy_milli_wh for p in pieces] == [750_000, 1_500_000, 750_000]
    # 0.75 kWh * 7 + 1.5 kWh * 8 + 0.75 kWh * 10 = 5.25 + 12 + 7.5 currency units
    assert [p.cost_micro for p in pieces] == [5_250_000, 12_000_000, 7_500_000]


def test_a_change_that_does_not_win_does_not_split():
    start = T0 + 20 * DAY
    versions = [v(1, 7_000_000, 0, Scope.ASSET, 7), CostVersion(2, 8_000_000, start + 600, Scope.GLOBAL)]
    pieces = price_interval(versions, ASSET, start, start + 900, 250_000)
    assert len(pieces) == 1 and pieces[0].version.version_id == 1 and pieces[0].energy_milli_wh == 250_000


def test_changes_on_the_interval_edges_leave_no_empty_piece():
    start = T0 + 20 * DAY
    versions = [v(1, 7_000_000, 0), CostVersion(2, 8_000_000, start), CostVersion(3, 9_000_000, start + 900)]
    pieces = price_interval(versions, ASSET, start, start + 900, 1_000)
    assert [(p.start, p.end, p.version.version_id) for p in pieces] == [(start, start + 900, 2)]


def test_without_a_version_a_piece_is_unpriced_not_free():
    start = T0 - 1800
    pieces = price_interval([v(1, 7_000_000, 0)], ASSET, start, start + 3600, 1_000_001)
    assert [(p.version, p.cost_micro) for p in pieces] == [(None, None), (pieces[1].version, pieces[1].cost_micro)]
    assert pieces[1].version.version_id == 1
    assert pieces[0].energy_milli_wh + pieces[1].energy_milli_wh == 1_000_001


def test_rates_and_costs_are_exact_integers():
    assert rate_micro_per_kwh("7.50") == 7_500_000
    assert rate_micro_per_kwh("0.321457") == 321_457
    with pytest.raises(ValueError):
        rate_micro_per_kwh(0.1)
    with pytest.raises(ValueError):
        rate_micro_per_kwh("0.0000001")
    with pytest.raises(ValueError):
        rate_micro_per_kwh("-1")
    assert cost_micro(3, 7_500_000) == 23  # 22.5 micro-units: half up
    assert cost_micro(1, 500_000) == 1 and cost_micro(1, 499_999) == 0
    assert cost_micro(-3, 7_500_000) == -22  # half up is towards +infinity


@st.composite
def version_sets(draw):
    n = draw(st.integers(0, 8))
    out = []
    for i in range(n):
        scope = draw(st.sampled_from(list(Scope)))
        scope_id = {Scope.GLOBAL: None, Scope.ORGANIZATION: draw(st.sampled_from([3, 4])),
                    Scope.GROUP: draw(st.sampled_from([11, 12, 13])), Scope.ASSET: draw(st.sampled_from([7, 8]))}[scope]
        rate, effective = draw(st.integers(0, 20_000_000)), T0 + draw(st.integers(0, 7200))
        out.append(CostVersion(i + 1, rate, effective, scope, scope_id))
    return out


@settings(max_examples=200, deadline=None)
@given(versions=version_sets(), start=st.integers(T0 - 600, T0 + 7200), length=st.integers(1, 7200),
       energy=st.integers(0, 10**9), probe=st.lists(st.integers(0, 10**6), max_size=5))
def test_pieces_cover_the_interval_sum_exactly_and_follow_rate_at(versions, start, length, energy, probe):
    pieces = price_interval(versions, ASSET, start, start + length, energy)
    assert pieces[0].start == start and pieces[-1].end == start + length
    assert all(a.end == b.start and a.version != b.version for a, b in zip(pieces, pieces[1:]))
    assert sum(p.energy_milli_wh for p in pieces) == energy
    for p in pieces:
        for t in [p.start, p.end - 1] + [p.start + x % (p.end - p.start) for x in probe]:
            assert rate_at(versions, ASSET, t) == p.version
        if p.version is not None:
            assert p.cost_micro == cost_micro(p.energy_milli_wh, p.version.rate_micro_per_kwh)

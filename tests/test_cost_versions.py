"""Cost versions end to end: stored in the registry, priced on read from the ledger,
shown by ``wattline energy`` (table/json/csv) and ``GET /api/energy``, managed with
``wattline cost-versions`` and ``/api/power-analytics/cost-versions``. On SQLite and
PostgreSQL. Every figure is compared, as integer micro-units, with a hand computation
from the readings' integer milli-Wh.
"""

from __future__ import annotations

import csv
import io
import json
import random
import subprocess
import sys
from datetime import date
from decimal import Decimal

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings, strategies as st

from helpers import batch
from world import env_for, make_ctx
from wattline.api.app import create_app
from wattline.domain import buckets as B
from wattline.domain import timeutil
from wattline.domain.cost import (
    AssetScopes, CostVersion, Scope, Tariff, bucket_costs, price_entries, price_interval, tariff,
)
from wattline.domain.metrics import MetricType
from wattline.security import tokens
from wattline.store import cost_versions_repo as repo
from wattline.store import energy_costs, queries, registry
from wattline.store.cost_versions_repo import ScopeRef

TZ = "Asia/Kolkata"
D0 = timeutil.local_midnight(date(2025, 11, 4), TZ)  # 2025-11-04T00:00+05:30
DAY = 86400
CHANGE = D0 + DAY + 14 * 3600  # 2025-11-05T14:00:00+05:30
R7, R75 = 7_000_000, 7_500_000  # 7.00 and 7.50 INR/kWh in micro-units


def price(milli_wh: int, rate: int) -> int:
    """The hand rule: milli-Wh x micro-units per kWh / 10**6, rounded half up."""
    return (2 * milli_wh * rate + 10**6) // (2 * 10**6)


def share(total: int, span: tuple[int, int], part: tuple[int, int]) -> int:
    """The telescoping share of ``total`` over ``span`` falling in ``part`` (by time)."""
    a, b = span
    lo, hi = max(a, part[0]), min(b, part[1])
    return int(np.rint(total * ((hi - a) / (b - a))) - np.rint(total * ((lo - a) / (b - a))))


# ------------------------------------------------------------------ the world


def _asset(dbs, name, *, org="campus", groups=()):
    """A device with a counter point ``energy``; returns (asset id, series id)."""
    with dbs.main.begin() as conn:
        org_id = registry.ensure_organization(conn, org, TZ)
        aid = registry.add_asset(conn, name, "device", TZ, organization_id=org_id)
        sid = registry.ensure_points(conn, aid, [registry.PointDefinition("energy", MetricType.COUNTER)])["energy"]
        for g in groups:
            gid = conn.exec_driver_sql(f"SELECT id FROM groups WHERE name = '{g}'").scalar()
            if gid is None:
                registry.add_group(conn, g, "classroom", [aid], organization_id=org_id)
            else:
                conn.exec_driver_sql(f"INSERT INTO group_members (group_id, asset_id) VALUES ({gid}, {aid})")
    return aid, sid


def _feed(pipeline, sid, ts, seed=1):
    """Counter readings at ``ts`` with odd deltas (so rounding matters); returns the
    entries [(start, end, delta milli-Wh)] the ledger must hold."""
    rng = random.Random(seed)
    milli = [50_000_000]
    for _ in ts[1:]:
        milli.append(milli[-1] + rng.randint(1, 200_000))
    pipeline.ingest(batch(sid, ts, [m / 1e6 for m in milli]))
    return [(a, b, m1 - m0) for a, b, m0, m1 in zip(ts, ts[1:], milli, milli[1:])]


def _two_days_with_a_late_reading():
    """15-minute readings over 2025-11-04/05 IST, except that 14:00 on the 5th is read at
    14:05: the entry 13:45-14:05 crosses the change of rate."""
    ts = list(range(D0, D0 + 2 * DAY + 1, 900))
    return [t + 300 if t == CHANGE else t for t in ts]


def _add(dbs, rate, effective, ref=ScopeRef(), currency="INR"):
    with dbs.main.begin() as conn:
        return repo.add(conn, rate_micro_per_kwh=rate, effective_from=effective, ref=ref, currency=currency)[0]


def _costs(dbs, aid, sid, period, start, end):
    with dbs.main.connect() as conn:
        tf = repo.tariff_for_asset(conn, aid)
    return queries.energy_buckets(dbs.telemetry, sid, period, start, end, TZ, tariff=tf)


def _hand(entries, rate_of):
    """Hand-priced stretches [(start, end, cost)]: an entry crossing CHANGE is split at
    it by time, each part priced at the rate of its side."""
    out = []
    for a, b, d in entries:
        if a < CHANGE < b and rate_of(a) != rate_of(CHANGE):
            first = share(d, (a, b), (a, CHANGE))
            out += [(a, CHANGE, price(first, rate_of(a))), (CHANGE, b, price(d - first, rate_of(CHANGE)))]
        else:
            out.append((a, b, price(d, rate_of(a))))
    return out


def _hand_bucket(stretches, start, end):
    return sum(share(c, (a, b), (start, end)) for a, b, c in stretches if a < end and b > start)


# ------------------------------------------------------------------ the domain, vectorised


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_vectorised_pricing_equals_price_interval(data):
    scopes = AssetScopes(7, 3, frozenset({11, 12}))
    versions = []
    for i in range(data.draw(st.integers(0, 6))):
        scope = data.draw(st.sampled_from(list(Scope)))
        sid = {Scope.GLOBAL: None, Scope.ORGANIZATION: 3, Scope.GROUP: data.draw(st.sampled_from([11, 12, 13])),
               Scope.ASSET: data.draw(st.sampled_from([7, 8]))}[scope]
        versions.append(CostVersion(i + 1, data.draw(st.integers(0, 20_000_000)), data.draw(st.integers(0, 5000)),
                                    scope, sid, "INR"))
    entries = data.draw(st.lists(st.tuples(st.integers(-500, 5000), st.integers(0, 3000), st.integers(0, 10**9)),
                                 max_size=12))
    tf = tariff(versions, scopes)
    got = price_entries(tf, [a for a, _, _ in entries], [a + n for a, n, _ in entries], [d for _, _, d in entries])
    expected = []
    for i, (a, n, d) in enumerate(entries):
        pieces = price_interval(versions, scopes, a, a + max(n, 1), d) if n else None
        if pieces is None:  # an entry of no duration: priced whole at its start
            v = tf.version_at(a)
            expected.append((i, a, a, d, None if v is None else v.version_id))
            continue
        expected += [(i, p.start, p.end, p.energy_milli_wh, None if p.version is None else p.version.version_id)
                     for p in pieces]
    assert [(int(i), int(s), int(e), int(en), None if tf.versions[k] is None else tf.versions[k].version_id)
            for i, s, e, en, k in zip(got["entry"], got["start"], got["end"], got["energy"], got["version"])] \
        == expected
    for en, k, c in zip(got["energy"].tolist(), got["version"].tolist(), got["cost"].tolist()):
        v = tf.versions[k]
        assert c == (0 if v is None else price(en, v.rate_micro_per_kwh))


def test_bucket_costs_without_versions_or_with_two_currencies_are_null_and_say_why():
    entries = {"series_id": np.array([1, 2]), "start_ts": np.array([0, 0]), "end_ts": np.array([3600, 3600]),
               "delta": np.array([1_000_000, 1_000_000])}
    inr = tariff([CostVersion(1, R7, 0, currency="INR")], AssetScopes(1))
    eur = tariff([CostVersion(2, 250_000, 0, currency="EUR")], AssetScopes(2))
    assert bucket_costs(entries, {1: inr, 2: eur}, "UTC", "hour", [(0, 3600)])[0].notes == ("mixed_currency",)
    only_one = bucket_costs(entries, {1: inr}, "UTC", "hour", [(0, 3600), (3600, 7200)])
    assert (only_one[0].cost_micro, only_one[0].currency, only_one[0].notes) == (7_000_000, "INR", ("partly_unpriced",))
    assert only_one[0].unpriced_milli_wh == 1_000_000
    assert (only_one[1].cost_micro, only_one[1].notes) == (0, ())  # no energy, a rate in effect: costs nothing
    none = bucket_costs(entries, {}, "UTC", "hour", [(0, 3600)])[0]
    assert (none.cost_micro, none.currency, none.notes) == (None, None, ("no_cost_version",))
    assert Tariff().in_effect_during(0, 10) is False


@pytest.mark.parametrize("rate", ["NaN", "Infinity", "-Infinity", "sNaN", "seven", ""])
def test_a_rate_that_is_not_a_finite_number_is_a_value_error(rate):
    from wattline.domain.cost import rate_micro_per_kwh

    with pytest.raises(ValueError):
        rate_micro_per_kwh(rate)
    if rate not in ("seven", ""):
        with pytest.raises(ValueError):
            rate_micro_per_kwh(Decimal(rate))


# ------------------------------------------------------------------ re-pricing by a new version


def test_a_mid_day_version_reprices_exactly_the_entries_after_it(dbs, pipeline):
    aid, sid = _asset(dbs, "ESP01/light_1")
    entries = _feed(pipeline, sid, _two_days_with_a_late_reading())
    _add(dbs, R7, timeutil.parse_instant("2025-01-01T00:00:00+05:30"))
    d1, d2 = D0 + DAY, D0 + 2 * DAY
    month = timeutil.month_bounds(2025, 11, TZ)
    old = _hand(entries, lambda t: R7)

    before_hours = _costs(dbs, aid, sid, "hour", d1, d2)
    assert [b.cost_micro for b in before_hours] == [_hand_bucket(old, b.start, b.end) for b in before_hours]
    before_day = _costs(dbs, aid, sid, "day", d1, d2)[0].cost_micro
    assert before_day == _hand_bucket(old, d1, d2)

    # 7.50 for this device from 14:00 IST on the 5th
    _add(dbs, R75, CHANGE, ScopeRef("asset", aid))
    new = _hand(entries, lambda t: R75 if t >= CHANGE else R7)
    crossing = [(a, b) for a, b, _ in entries if a < CHANGE < b]
    assert crossing == [(CHANGE - 900, CHANGE + 300)]
    # the crossing entry is split at 14:00: 15 of its 20 minutes at 7.00, 5 at 7.50
    (a, b, d), = [e for e in entries if e[0] < CHANGE < e[1]]
    first = int(np.rint(d * 0.75))
    assert [s for s in new if s[0] == a or s[0] == CHANGE] == [(a, CHANGE, price(first, R7)),
                                                               (CHANGE, b, price(d - first, R75))]

    hours = _costs(dbs, aid, sid, "hour", d1, d2)
    assert [b.cost_micro for b in hours] == [_hand_bucket(new, b.start, b.end) for b in hours]
    assert all(b.currency == "INR" and b.cost_notes == () for b in hours)
    # the hours before 13:00 IST keep their cost; from 14:00 every hour costs more
    assert [b.cost_micro for b in hours[:13]] == [b.cost_micro for b in before_hours[:13]]
    assert all(n.cost_micro > o.cost_micro for n, o in zip(hours[14:], before_hours[14:]))
    day1, day2 = _costs(dbs, aid, sid, "day", D0, d2)
    assert day1.cost_micro == _hand_bucket(old, D0, d1)  # the day before: untouched
    assert day2.cost_micro == _hand_bucket(new, d1, d2) == sum(b.cost_micro for b in hours)
    assert day2.cost_micro > before_day
    (m,) = _costs(dbs, aid, sid, "month", *month)
    assert m.cost_micro == day1.cost_micro + day2.cost_micro == sum(c for _, _, c in new)
    (y,) = _costs(dbs, aid, sid, "year", *timeutil.year_bounds(2025, TZ))
    assert y.cost_micro == m.cost_micro
    for period in ("5min", "15min"):
        fine = _costs(dbs, aid, sid, period, d1, d2)
        assert sum(b.cost_micro for b in fine) == day2.cost_micro
        assert [b.cost_micro for b in fine] == [_hand_bucket(new, b.start, b.end) for b in fine]
    # energy is untouched by pricing
    assert sum(b.energy_milli_wh for b in hours) == sum(d for a, _, d in entries if a >= d1)


def test_export_json_and_csv_carry_the_same_exact_cost(dbs, pipeline, tmp_path):
    aid, sid = _asset(dbs, "ESP02/fan_1")
    entries = _feed(pipeline, sid, _two_days_with_a_late_reading(), seed=2)
    ctx = make_ctx(dbs, tmp_path)
    env = env_for(ctx)

    def cli(*args):
        p = subprocess.run([sys.executable, "-m", "wattline.cli", *args], env=env, capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, p.stderr
        return p.stdout

    cli("cost-versions", "add", "--rate", "7.00", "--currency", "INR", "--from", "2025-01-01T00:00:00+05:30",
        "--notes", "initial rate")
    cli("cost-versions", "add", "--rate", "7.50", "--from", "2025-11-05T14:00:00+05:30", "--asset", "ESP02/fan_1")
    listed = json.loads(cli("cost-versions", "list", "--format", "json"))["versions"]
    assert [(v["cost_per_kwh"], v["currency"], v["scope"], v["scope_name"]) for v in listed] == [
        ("7.00", "INR", "global", None), ("7.50", "INR", "asset", "ESP02/fan_1")]  # INR: the default follows
    new = _hand(entries, lambda t: R75 if t >= CHANGE else R7)
    args = ("energy", "--asset", "ESP02/fan_1", "--point", "energy", "--from", "2025-11-04T00:00:00+05:30",
            "--to", "2025-11-06T00:00:00+05:30")
    report = json.loads(cli(*args, "--period", "hour", "--format", "json"))
    assert report["total_cost_micro"] == sum(c for _, _, c in new) and report["currency"] == "INR"
    assert [b["cost_micro"] for b in report["buckets"]] == [
        _hand_bucket(new, timeutil.parse_instant(b["start"]), timeutil.parse_instant(b["end"]))
        for b in report["buckets"]]
    assert all(Decimal(repr(b["cost"])) * 10**6 == b["cost_micro"] for b in report["buckets"])
    rows = list(csv.reader(io.StringIO(cli(*args, "--period", "day", "--format", "csv"))))
    assert rows[0] == ["start", "end", "energy_kwh", "quality", "cost", "currency", "cost_quality"]
    day_costs = [Decimal(r[4]) * 10**6 for r in rows[1:3]]
    assert day_costs == [_hand_bucket(new, D0, D0 + DAY), _hand_bucket(new, D0 + DAY, D0 + 2 * DAY)]
    assert rows[3][0] == "total" and Decimal(rows[3][4]) * 10**6 == report["total_cost_micro"]
    assert "cost" in cli(*args, "--period", "day")  # the table shows it too


def test_no_version_means_no_cost_not_zero(dbs, pipeline):
    aid, sid = _asset(dbs, "ESP03/light_2")
    _feed(pipeline, sid, list(range(D0, D0 + DAY + 1, 900)))
    (b,) = _costs(dbs, aid, sid, "day", D0, D0 + DAY)
    assert (b.cost_micro, b.currency, b.cost_notes) == (None, None, ("no_cost_version",))
    _add(dbs, R7, D0 + 12 * 3600)  # from noon on: the morning stays unpriced
    (b,) = _costs(dbs, aid, sid, "day", D0, D0 + DAY)
    report = queries.energy_report("x", "energy", "day", TZ, [b])
    assert b.cost_notes == ("partly_unpriced",) and b.unpriced_milli_wh > 0
    assert report["cost_quality"] == ["partly_unpriced"] and report["total_cost_micro"] == b.cost_micro


# ------------------------------------------------------------------ scopes


def test_scope_precedence_asset_over_group_over_organization_over_global(dbs, pipeline):
    a1, s1 = _asset(dbs, "A1", groups=("CR-101",))
    a2, s2 = _asset(dbs, "A2", groups=("CR-101",))
    a3, s3 = _asset(dbs, "A3")
    a4, s4 = _asset(dbs, "A4", org="elsewhere")
    ts = list(range(D0, D0 + DAY + 1, 900))
    entries = {s: _feed(pipeline, s, ts, seed=s) for s in (s1, s2, s3, s4)}
    with dbs.main.connect() as conn:
        org = conn.exec_driver_sql("SELECT id FROM organizations WHERE name = 'campus'").scalar()
        group = repo.resolve_scope(conn, group="CR-101", group_kind="classroom")
    # added least specific last, all from the same instant
    _add(dbs, 9_000_000, D0, ScopeRef("asset", a1))
    _add(dbs, 8_000_000, D0, group)
    _add(dbs, 7_500_000, D0, ScopeRef("organization", org))
    _add(dbs, 7_000_000, D0)
    expected = {s1: 9_000_000, s2: 8_000_000, s3: 7_500_000, s4: 7_000_000}
    for (aid, sid) in ((a1, s1), (a2, s2), (a3, s3), (a4, s4)):
        (b,) = _costs(dbs, aid, sid, "day", D0, D0 + DAY)
        assert b.cost_micro == sum(price(d, expected[sid]) for _, _, d in entries[sid]), sid
    # the classroom sums its members' costs, each at its own rate
    tz, (day,) = energy_costs.group_costs(dbs.main_reader, dbs.telemetry, group.scope_id, "day", D0, D0 + DAY)
    assert tz == TZ
    assert day.cost_micro == sum(price(d, expected[s]) for s in (s1, s2) for _, _, d in entries[s])
    hours = energy_costs.group_costs(dbs.main_reader, dbs.telemetry, group.scope_id, "hour", D0, D0 + DAY)[1]
    assert sum(h.cost_micro for h in hours) == day.cost_micro


@pytest.fixture
def priced_world(dbs, pipeline):
    """A device in two classrooms with irregular readings over two days."""
    aid, sid = _asset(dbs, "ESP09/fan_3", groups=("CR-201", "CR-202"))
    rng = random.Random(9)
    ts = sorted({D0 + rng.randint(0, 2 * DAY) for _ in range(150)} | {D0, D0 + 2 * DAY})
    _feed(pipeline, sid, ts, seed=9)
    with dbs.main.connect() as conn:
        org = conn.exec_driver_sql("SELECT id FROM organizations WHERE name = 'campus'").scalar()
        gids = [repo.resolve_scope(conn, group=g).scope_id for g in ("CR-201", "CR-202")]
    return dbs, aid, sid, org, gids


def test_any_order_of_adding_the_same_versions_gives_the_same_cost_and_hours_add_up_to_days(priced_world):
    dbs, aid, sid, org, gids = priced_world
    targets = [ScopeRef(), ScopeRef("organization", org), ScopeRef("group", gids[0]), ScopeRef("group", gids[1]),
               ScopeRef("asset", aid)]

    def costs_after_adding(versions):
        """Add the versions in this order, price, and roll back (nothing stays)."""
        with dbs.main.connect() as conn:
            tx = conn.begin()
            for rate, at, ref in versions:
                repo.add(conn, rate_micro_per_kwh=rate, effective_from=at, ref=ref, currency="INR")
            tf = repo.tariff_for_asset(conn, aid)
            tx.rollback()
        out = {}
        for period in ("day", "hour", "15min"):
            wanted = B.bucket_range(period, D0, D0 + 2 * DAY, TZ)
            out[period] = [c.cost_micro for c in energy_costs.series_costs(dbs.telemetry, {sid: tf}, period, wanted, TZ)]
        return out

    @settings(max_examples=15, deadline=None)
    @given(data=st.data())
    def check(data):
        n = data.draw(st.integers(1, 6))
        # distinct instants per scope kind: a tie (same kind, same instant) goes to the later
        # added version by design, so only then could the order matter
        seen, versions = set(), []
        for _ in range(n):
            ref = data.draw(st.sampled_from(targets))
            at = D0 + data.draw(st.integers(-DAY, 2 * DAY)) // 60 * 60
            kind = ref.scope
            if (kind, at) in seen:
                continue
            seen.add((kind, at))
            versions.append((data.draw(st.integers(0, 30_000_000)), at, ref))
        order = data.draw(st.permutations(versions))
        first, second = costs_after_adding(versions), costs_after_adding(list(order))
        assert first == second
        # unpriced hours (None) add nothing: the priced ones add up to the day exactly
        days = [c or 0 for c in first["day"]]
        hours = [c or 0 for c in first["hour"]]
        assert len(hours) == 48 and sum(hours[:24]) == days[0] and sum(hours[24:]) == days[1]
        assert sum(c or 0 for c in first["15min"]) == sum(days)

    check()
    with dbs.main.connect() as conn:
        assert repo.list_versions(conn) == []


# ------------------------------------------------------------------ the API


def test_api_adds_versions_refuses_bad_input_unchanged_and_prices_energy(dbs, pipeline, tmp_path):
    aid, sid = _asset(dbs, "ESP04/light_1", groups=("CR-301",))
    entries = _feed(pipeline, sid, list(range(D0, D0 + DAY + 1, 900)), seed=4)
    ctx = make_ctx(dbs, tmp_path)
    with dbs.main.begin() as conn:
        admin = tokens.create_token(conn, "admin token", "admin")
        viewer = tokens.create_token(conn, "viewer token", "viewer")
    url = "/api/power-analytics/cost-versions"
    good = {"cost_per_kwh": 7.5, "effective_from": "2025-11-04T06:00:00+05:30", "classroom": "CR-301",
            "notes": "Standard electricity rate"}
    with TestClient(create_app(ctx)) as client:
        h = {"Authorization": f"Bearer {admin}"}
        bad = [
            {**good, "cost_per_kwh": -1},
            {**good, "cost_per_kwh": "7.1234567"},
            {**good, "cost_per_kwh": "seven"},
            {**good, "effective_from": "yesterday"},
            {**good, "effective_from": "2025-11-04T06:00:00"},  # no offset
            {**good, "classroom": "CR-999"},
            {**good, "asset_id": aid},  # two scopes
            {**good, "currency": "inr"},
            {**good, "colour": "blue"},
            {"effective_from": good["effective_from"]},
        ]
        for body in bad:
            r = client.post(url, json=body, headers=h)
            assert r.status_code == 400, (body, r.text)
            assert set(r.json()) == {"error", "code", "details"}
        assert client.post(url, json=good, headers={"Authorization": f"Bearer {viewer}"}).status_code == 403
        assert client.post(url, json=good).status_code == 401
        assert client.get(url, headers=h).json() == {"versions": []}  # nothing stored by any of them
        other = client.request("OPTIONS", url, headers=h)
        assert other.status_code == 405 and other.headers["allow"] == "GET, POST"

        r = client.post(url, json=good, headers=h)
        assert r.status_code == 201, r.text
        v = r.json()
        assert (v["cost_per_kwh"], v["cost_per_kwh_micro"], v["currency"], v["scope"], v["scope_name"],
                v["created_by"], v["effective_from"], v["created"]) == (
            "7.50", R75, "INR", "group", "CR-301", "admin token", "2025-11-04T00:30:00Z", True)
        again = client.post(url, json=good, headers=h)
        assert again.status_code == 200 and again.json()["id"] == v["id"] and again.json()["created"] is False
        assert [x["id"] for x in client.get(url, headers={"Authorization": f"Bearer {viewer}"}).json()["versions"]] \
            == [v["id"]]

        r = client.get("/api/energy", params={"asset": "ESP04/light_1", "point": "energy", "period": "day",
                                              "from": "2025-11-04T00:00:00+05:30", "to": "2025-11-05T00:00:00+05:30"},
                       headers=h)
        assert r.status_code == 200, r.text
        report = r.json()
        at = timeutil.parse_instant(good["effective_from"])
        expected = sum(price(d, R75) for a, _, d in entries if a >= at)
        assert report["buckets"][0]["cost_micro"] == report["total_cost_micro"] == expected
        assert report["buckets"][0]["cost_quality"] == ["partly_unpriced"]  # nothing priced before 06:00
        assert report["currency"] == "INR" and report["total_cost"] == expected / 1e6

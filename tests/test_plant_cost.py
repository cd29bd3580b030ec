"""Plants and work orders carry cost next to energy (issue 10, item 5), over real HTTP.

Two plants in Europe/Berlin are backfilled from the emulated vendor clouds (the real
backfill path: vendor API -> pipeline -> ledger -> aggregates -> summaries), members
of work order 456 (zone Europe/Berlin). Cost versions are then added: plant 123 at
0.20 EUR/kWh, and 0.35 from 09:07:30 on the summaries' day (mid-day, between two
15-minute readings, so one ledger entry is split at the change); plant 124 through a
work-order (group) version from 1 November only, so its October is unpriced.

Every figure is checked against a computation by hand from the ledger rows in the
database: each entry split at the change by share of time, each part priced
``round_half_up(milli-Wh x micro-units per kWh / 10**6)``, each part's cost shared
over the buckets it overlaps by time. Days add up to the month, bars to the summary,
plants to their work order, to the micro-unit; with no version everything is null and
says ``no_cost_version``, never 0.
"""

from __future__ import annotations

import asyncio
from datetime import date

import httpx
import numpy as np
import pytest

from test_api import Server
from world import CLOUD_NOW, WorldPlant, cloud_config, make_ctx, set_up
from wattline.api.app import create_app
from wattline.domain import timeutil
from wattline.jobs.backfill import backfill_plant
from wattline.security import tokens
from wattline.simulator.vendor_cloud.server import BackgroundCloud
from wattline.store import cost_versions_repo as repo
from wattline.store import groups_repo, registry
from wattline.store.cost_versions_repo import ScopeRef

TZ = "Europe/Berlin"
DAY = 86400
NOW = CLOUD_NOW + 60  # 2025-11-22T12:01:00Z, 13:01 in Berlin
TODAY = timeutil.day_bounds(date(2025, 11, 22), TZ)
NOVEMBER = timeutil.month_bounds(2025, 11, TZ)
CHANGE = timeutil.parse_instant("2025-11-22T09:07:30+01:00")
R20, R35, R25 = 200_000, 350_000, 250_000  # 0.20, 0.35, 0.25 EUR/kWh in micro-units


def price(milli_wh: int, rate: int) -> int:
    """The hand rule: milli-Wh x micro-units per kWh / 10**6, rounded half up."""
    return (2 * milli_wh * rate + 10**6) // (2 * 10**6)


def share(total: int, span: tuple[int, int], part: tuple[int, int]) -> int:
    """The telescoping share of ``total`` over ``span`` falling in ``part`` (by time)."""
    a, b = span
    lo, hi = max(a, min(b, part[0])), min(b, max(a, part[1]))
    return int(np.rint(total * ((hi - a) / (b - a))) - np.rint(total * ((lo - a) / (b - a))))


def stretches(entries, changes, rate_of):
    """[(start, end, energy, cost or None)]: each entry split at the instants where
    ``rate_of`` changes, each part priced at its rate (None: unpriced)."""
    out = []
    for a, b, d in entries:
        cuts = [a] + [c for c in changes if a < c < b and rate_of(c) != rate_of(c - 1)] + [b]
        for lo, hi in zip(cuts, cuts[1:]):
            e = share(d, (a, b), (lo, hi))
            r = rate_of(lo)
            out.append((lo, hi, e, None if r is None else price(e, r)))
    return out


def hand_cost(parts, start, end):
    """(cost of [start, end) in micro-units, its unpriced energy in milli-Wh)."""
    cost = sum(share(c, (a, b), (start, end)) for a, b, _e, c in parts if c is not None and a < end and b > start)
    unpriced = sum(share(e, (a, b), (start, end)) for a, b, e, c in parts if c is None and a < end and b > start)
    return cost, unpriced


def ledger(ctx, plant_id):
    """The plant's energy_total ledger entries [(start, end, milli-Wh)] from the database."""
    with ctx.dbs.main_reader.connect() as conn:
        sid = registry.point(conn, plant_id, "energy_total")["id"]
    with ctx.dbs.telemetry.connect() as conn:
        rows = conn.exec_driver_sql(
            f"SELECT start_ts, end_ts, delta_milli_wh FROM ledger WHERE series_id = {sid} ORDER BY end_ts").all()
    return [(int(a), int(b), int(d)) for a, b, d in rows]


@pytest.fixture
def served(dbs, tmp_path, set_clock):
    set_clock(NOW)  # the summaries' refresh, and so their day, month and year, is NOW
    ctx = make_ctx(dbs, tmp_path)
    start = timeutil.day_bounds(date(2025, 10, 14), TZ)[0]
    plants = [WorldPlant(123, "solarman", "64786338", TZ, start),
              WorldPlant(124, "sungrow", "5001240", TZ, start)]
    with BackgroundCloud(cloud_config(plants)) as cloud:
        set_up(ctx, cloud.base_url, plants, work_order=456)
        with ctx.dbs.main.begin() as conn:
            groups_repo.set_timezone(conn, 456, TZ)
            token = tokens.create_token(conn, "viewer", "viewer")
        for p in plants:
            result = asyncio.run(backfill_plant(ctx, p.plant_id, now=NOW))
            assert result.success, result
    with Server(create_app(ctx)) as server:
        client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        yield client, ctx


def _get(client, path):
    r = client.get(path)
    assert r.status_code == 200, r.text
    return r.json()


def _add(ctx, rate, iso, ref):
    with ctx.dbs.main.begin() as conn:
        repo.add(conn, rate_micro_per_kwh=rate, effective_from=timeutil.parse_instant(iso), ref=ref, currency="EUR")


def test_no_cost_version_means_null_cost_that_says_so(served):
    client, _ctx = served
    plant = _get(client, "/api/plants/123")["summary"]
    assert plant["daily_energy_kwh"] > 0 and plant["monthly_energy_mwh"] > 0
    for period in ("daily", "monthly", "yearly", "total"):
        assert plant[f"{period}_cost"] is None and plant[f"{period}_cost_micro"] is None
        assert plant["cost_quality"][period] == ["no_cost_version"]
    assert plant["currency"] is None
    bars = _get(client, "/api/telemetry/plant/123/charts/daily-energy?days=31")["bars"]
    assert any(b["energy_kwh"] > 0 for b in bars)
    assert all(b["cost"] is None and b["cost_micro"] is None and b["cost_quality"] == ["no_cost_version"] for b in bars)
    wo = _get(client, "/api/work-orders/456?days=31")
    assert wo["summary"]["daily_cost"] is None and wo["summary"]["cost_quality"]["daily"] == ["no_cost_version"]
    assert all(b["cost"] is None and b["cost_quality"] == ["no_cost_version"] for b in wo["dailyBars"])
    listed = _get(client, "/api/plants")["plants"]
    assert all(p["summary"]["total_cost"] is None for p in listed)
    assert _get(client, "/api/work-orders")["workOrders"][0]["summary"]["monthly_cost"] is None


def test_plant_and_work_order_costs_are_exact_and_add_up(served):
    client, ctx = served
    _add(ctx, R20, "2025-01-01T00:00:00+01:00", ScopeRef("asset", 123))
    # priced at 0.20 throughout first (and memoised): the versions added next re-price it
    before = _get(client, "/api/plants/123")["summary"]
    assert before["daily_cost_micro"] == hand_cost(stretches(ledger(ctx, 123), [], lambda t: R20), *TODAY)[0]
    _add(ctx, R35, "2025-11-22T09:07:30+01:00", ScopeRef("asset", 123))
    _add(ctx, R25, "2025-11-01T00:00:00+01:00", ScopeRef("group", 456))
    rates = {123: lambda t: R35 if t >= CHANGE else R20,
             124: lambda t: R25 if t >= NOVEMBER[0] else None}
    changes = {123: [CHANGE], 124: [NOVEMBER[0]]}
    parts = {p: stretches(ledger(ctx, p), changes[p], rates[p]) for p in (123, 124)}

    # the mid-day change: 123's day is its energy before at 0.20 plus after at 0.35
    crossing = [(a, b) for a, b, _ in ledger(ctx, 123) if a < CHANGE < b]
    assert len(crossing) == 1  # read at 15-minute steps: one entry spans 09:07:30
    day_cost, day_unpriced = hand_cost(parts[123], *TODAY)
    before_mwh = sum(share(e, (a, b), TODAY) for a, b, e, _c in parts[123] if b <= CHANGE)
    after_mwh = sum(share(e, (a, b), TODAY) for a, b, e, _c in parts[123] if a >= CHANGE)
    assert before_mwh > 0 and after_mwh > 0 and day_unpriced == 0
    n_parts = sum(1 for a, b, _e, _c in parts[123] if a < TODAY[1] and b > TODAY[0])
    assert abs(day_cost - (before_mwh * R20 + after_mwh * R35) / 1e6) <= n_parts / 2  # rounding per part

    plants = {p: _get(client, f"/api/plants/{p}")["summary"] for p in (123, 124)}
    s = plants[123]
    assert s["daily_cost_micro"] == day_cost and s["daily_cost"] == day_cost / 1e6
    assert s["currency"] == "EUR" and all(q == [] for q in s["cost_quality"].values())
    assert s["daily_energy_kwh"] == pytest.approx((before_mwh + after_mwh) / 1e6, abs=0.0005)
    assert s["monthly_cost_micro"] == hand_cost(parts[123], *NOVEMBER)[0]
    year = timeutil.year_bounds(2025, TZ)
    assert s["yearly_cost_micro"] == s["total_cost_micro"] == hand_cost(parts[123], *year)[0]
    assert s["total_cost_micro"] > s["monthly_cost_micro"] > s["daily_cost_micro"] > 0

    # 124: priced from 1 November by its work order's version, October has no version
    t = plants[124]
    assert t["monthly_cost_micro"] == hand_cost(parts[124], *NOVEMBER)[0] and t["cost_quality"]["monthly"] == []
    cost, unpriced = hand_cost(parts[124], *year)
    assert unpriced > 0 and t["yearly_cost_micro"] == t["total_cost_micro"] == cost == t["monthly_cost_micro"]
    assert t["cost_quality"]["yearly"] == t["cost_quality"]["total"] == ["partly_unpriced"]

    # daily bars: each day exact, today's is the summary's, November's add up to the month
    for p in (123, 124):
        bars = _get(client, f"/api/telemetry/plant/{p}/charts/daily-energy?days=45")["bars"]
        assert bars[-1]["date"] == "2025-11-22" and bars[-1]["cost_micro"] == plants[p]["daily_cost_micro"]
        for b in bars:
            span = (timeutil.parse_instant(b["start"]), timeutil.parse_instant(b["end"]))
            cost, unpriced = hand_cost(parts[p], *span)
            if rates[p](span[0]) is None:
                assert b["cost"] is None and b["cost_quality"] == ["no_cost_version"]
                assert (unpriced > 0) == (b["energy_kwh"] > 0)
            else:
                assert b["cost_micro"] == cost and b["currency"] == "EUR" and b["cost_quality"] == []
        nov = [b["cost_micro"] for b in bars if b["date"] >= "2025-11-01"]
        assert sum(nov) == plants[p]["monthly_cost_micro"]
        assert sum(b["cost_micro"] or 0 for b in bars) == plants[p]["yearly_cost_micro"]

    # the work order: each period the sum of its plants, its bars the sum of theirs
    wo = _get(client, "/api/work-orders/456?days=45")
    assert wo["timezone"] == TZ
    for period in ("daily", "monthly", "yearly", "total"):
        assert wo["summary"][f"{period}_cost_micro"] == sum(plants[p][f"{period}_cost_micro"] for p in plants)
    assert wo["summary"]["cost_quality"] == {"daily": [], "monthly": [], "yearly": ["partly_unpriced"],
                                             "total": ["partly_unpriced"]}
    assert [c["summary"] for c in wo["plants"]] == [plants[123], plants[124]]
    bars = {p: _get(client, f"/api/telemetry/plant/{p}/charts/daily-energy?days=45")["bars"] for p in plants}
    for i, b in enumerate(wo["dailyBars"]):
        members = [bars[p][i] for p in plants]
        assert b["date"] == members[0]["date"] == members[1]["date"]
        assert b["cost_micro"] == sum(m["cost_micro"] or 0 for m in members)
        unpriced_energy = members[1]["cost"] is None and members[1]["energy_kwh"] > 0
        assert b["cost_quality"] == (["partly_unpriced"] if unpriced_energy else [])
        assert unpriced_energy == ("2025-10-14" <= b["date"] < "2025-11-01")
    assert wo["dailyBars"][-1]["cost_micro"] == wo["summary"]["daily_cost_micro"]
    assert sum(b["cost_micro"] for b in wo["dailyBars"] if b["date"] >= "2025-11-01") == wo["summary"]["monthly_cost_micro"]

    # the lists say the same
    listed = {p["id"]: p["summary"] for p in _get(client, "/api/plants")["plants"]}
    assert listed == plants
    (item,) = _get(client, "/api/work-orders")["workOrders"]
    assert item["summary"] == wo["summary"]


def _entries(dbs, sid):
    with dbs.telemetry.connect() as conn:
        rows = conn.exec_driver_sql(
            f"SELECT start_ts, end_ts, delta_milli_wh FROM ledger WHERE series_id = {sid} ORDER BY end_ts").all()
    return [(int(a), int(b), int(d)) for a, b, d in rows]


def test_memoised_months_follow_late_data_and_unpriced_members_stay_unpriced(dbs, pipeline, set_clock):
    """Through the pipeline directly: plant 701 priced, plant 702 without any version,
    both in work order 790. A late reading moving energy from a closed month (October)
    into November re-prices October although its cost was memoised; the work order's
    days are 701's cost with 702's energy said to be unpriced."""
    import random

    from helpers import batch
    from wattline.domain.metrics import MetricType
    from wattline.store import energy_costs

    set_clock(NOW)
    with dbs.main.begin() as conn:
        org = registry.ensure_organization(conn, "solar co", TZ)
        sids = {}
        for pid in (701, 702):
            registry.add_asset(conn, f"plant {pid}", "plant", TZ, organization_id=org, asset_id=pid)
            sids[pid] = registry.ensure_points(conn, pid, [registry.PointDefinition(
                "energy_total", MetricType.COUNTER)])["energy_total"]
        registry.add_group(conn, "WO 790", "work_order", [701, 702], group_id=790, organization_id=org)
        repo.add(conn, rate_micro_per_kwh=R20, effective_from=timeutil.parse_instant("2025-01-01T00:00:00Z"),
                 ref=ScopeRef("asset", 701), currency="EUR")
    start = timeutil.day_bounds(date(2025, 10, 30), TZ)[0]
    ts = list(range(start, NOW - 60, 900))
    rng = random.Random(7)
    for pid in (701, 702):
        kwh = [100.0]
        for _ in ts[1:]:
            kwh.append(round(kwh[-1] + rng.uniform(0.5, 3.0), 3))
        pipeline.ingest(batch(sids[pid], ts, kwh))
    year = timeutil.year_bounds(2025, TZ)

    def summary_costs():
        return energy_costs.summary_costs(dbs.main_reader, dbs.telemetry, {701: NOW, 702: NOW})

    def hand(period):
        return hand_cost(stretches(_entries(dbs, sids[701]), [], lambda t: R20), *period)[0]

    first = summary_costs()
    assert first[701]["year"].cost_micro == hand(year) and first[701]["month"].cost_micro == hand(NOVEMBER)
    assert all(c.cost_micro is None and c.notes == ("no_cost_version",) for c in first[702].values())
    assert first[702]["lifetime"].unpriced_milli_wh > 0

    # the reading at November's first instant read higher: the entry ending there
    # (October's last) gains energy, the one starting there (November's first) loses it
    midnight = NOVEMBER[0]
    assert midnight in ts
    with dbs.telemetry.connect() as conn:
        old = conn.exec_driver_sql(f"SELECT value FROM readings WHERE series_id = {sids[701]} "
                                   f"AND ts = {midnight}").scalar()
        following = conn.exec_driver_sql(f"SELECT value FROM readings WHERE series_id = {sids[701]} "
                                         f"AND ts = {midnight + 900}").scalar()
    pipeline.ingest(batch(sids[701], [midnight], [round((old + following) / 2, 3)]))
    again = summary_costs()
    assert again[701]["year"].cost_micro == hand(year) == again[701]["lifetime"].cost_micro
    assert again[701]["month"].cost_micro == hand(NOVEMBER) < first[701]["month"].cost_micro
    october = (timeutil.month_bounds(2025, 10, TZ)[0], NOVEMBER[0])
    assert again[701]["year"].cost_micro - again[701]["month"].cost_micro == hand(october)

    days = [timeutil.day_bounds(date(2025, 11, d), TZ) for d in (20, 21, 22)]
    group = energy_costs.group_day_costs(dbs.main_reader, dbs.telemetry, 790, days)
    own = energy_costs.plant_day_costs(dbs.main_reader, dbs.telemetry, 701, days)
    assert [g.cost_micro for g in group] == [o.cost_micro for o in own] == [hand(d) for d in days]
    assert all(g.notes == ("partly_unpriced",) and g.unpriced_milli_wh > 0 for g in group)
    assert all(c.cost_micro is None for c in energy_costs.plant_day_costs(dbs.main_reader, dbs.telemetry, 702, days))

"""Group roll-ups: periods of the group's zone, exact against the members' ledgers;
the per-metric rules (capacity-weighted state of charge)."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from sqlalchemy import update

from wattline.domain import groups as rules
from wattline.domain import timeutil
from wattline.domain.metrics import MetricType
from wattline.domain.readings import ReadingBatch
from wattline.pipeline import rollup
from wattline.store import groups_repo, queries, registry
from wattline.store.tables import assets

DAY = 86400


def _t(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp())


def _members(dbs, pipeline, zones: dict[int, str], org_tz: str, now: int, *, soc=False) -> dict[int, int]:
    """Plants in ``zones`` (id -> IANA zone) in work order 900 of an organization in
    ``org_tz``, with 45 days of an irregular counter up to ``now``; returns id -> series."""
    rng = np.random.default_rng(9)
    with dbs.main.begin() as conn:
        org = registry.ensure_organization(conn, "Group org", org_tz)
        series = {}
        for pid, tz in zones.items():
            registry.add_asset(conn, f"plant {pid}", "plant", tz, asset_id=pid, organization_id=org)
            specs = [registry.PointDefinition("energy_total", MetricType.COUNTER)]
            if soc:
                specs.append(registry.PointDefinition("battery_soc", MetricType.SOC))
            series[pid] = registry.ensure_points(conn, pid, specs)
        registry.add_group(conn, "WO 900", "work_order", list(zones), group_id=900, organization_id=org)
    for pid, pts in series.items():
        ts = np.arange(now - 45 * DAY, now + 1, 900, dtype=np.int64)
        # holes of a few hours, some across midnights, so ledger deltas span day edges
        keep = rng.random(len(ts)) > 0.15
        ts = ts[keep] + rng.integers(0, 300, keep.sum())  # off the 15-minute grid too
        kwh = np.cumsum(rng.random(len(ts)) * 3.0) + 1000.0
        pipeline.ingest(ReadingBatch(np.full(len(ts), pts["energy_total"]), ts, kwh,
                                     np.full(len(ts), -1), [], "test"), refresh_summaries=False)
    return {pid: pts["energy_total"] for pid, pts in series.items()}


def _fifteen_minute_sum(dbs, series: dict[int, int], zones: dict[int, str], start: int, end: int) -> int:
    """The members' 15-minute on-read pieces in [start, end), milli-Wh."""
    total = 0
    for pid, sid in series.items():
        total += sum(b.energy_milli_wh for b in queries.energy_buckets(dbs.telemetry, sid, "15min", start, end,
                                                                         zones[pid]))
    return total


def _check_bars(dbs, series, zones, bars, tz, now, days=31):
    assert len(bars) == days
    today = timeutil.local_date(now, tz)
    assert bars[-1]["date"] == today.isoformat()
    assert [b["date"] for b in bars] == sorted({b["date"] for b in bars})  # consecutive, distinct
    for bar in bars:
        start = timeutil.parse_instant(bar["start"])
        end = timeutil.parse_instant(bar["end"])
        assert (start, end) == timeutil.day_bounds(datetime.fromisoformat(bar["date"]).date(), tz)
        assert round(bar["energy_kwh"] * 1e6) == _fifteen_minute_sum(dbs, series, zones, start, end), bar


def test_work_order_at_23_30_utc_has_31_bars_of_its_zone(dbs, pipeline):
    """Madrid and Kolkata members at 23:30 UTC: Kolkata is already in tomorrow, the
    group (its organization's Europe/Madrid) has exactly 31 days, each the members'
    ledger over that day of the group."""
    zones = {301: "Europe/Madrid", 302: "Asia/Kolkata"}
    now = _t("2026-12-01T23:30:00")
    series = _members(dbs, pipeline, zones, "Europe/Madrid", now)
    bars = rollup.group_daily_bars(dbs.telemetry, dbs.main_reader, 900, 31, now)
    _check_bars(dbs, series, zones, bars, "Europe/Madrid", now)
    assert bars[-1]["date"] == "2026-12-02"  # 00:30 in Madrid
    assert all("no_data" not in b["quality"] for b in bars)
    assert any("estimated" in b["quality"] for b in bars)  # deltas across the group's midnights


def test_group_bars_take_now_from_the_clock(dbs, pipeline, set_clock):
    """Without an explicit ``now`` (as the API calls it) the bars end at the clock's day:
    at 23:30 UTC still 31 of them."""
    zones = {301: "Europe/Madrid", 302: "Asia/Kolkata"}
    now = _t("2026-12-01T23:30:00")
    _members(dbs, pipeline, zones, "Europe/Madrid", now)
    set_clock(now)
    bars = rollup.group_daily_bars(dbs.telemetry, dbs.main_reader, 900)
    assert len(bars) == 31 and bars[-1]["date"] == "2026-12-02"


def test_work_order_route_serves_the_group_bars(dbs, pipeline, tmp_path, set_clock):
    """GET /api/work-orders/{id} at 23:30 UTC: 31 bars of the group's zone, not 32."""
    from fastapi.testclient import TestClient
    from world import make_ctx

    from wattline.api.app import create_app
    from wattline.security import tokens

    zones = {301: "Europe/Madrid", 302: "Asia/Kolkata"}
    now = _t("2026-12-01T23:30:00")
    series = _members(dbs, pipeline, zones, "Europe/Madrid", now)
    with dbs.main.begin() as conn:
        token = tokens.create_token(conn, "viewer token", "viewer")
    set_clock(now)
    with TestClient(create_app(make_ctx(dbs, tmp_path))) as client:
        r = client.get("/api/work-orders/900?days=31", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    bars = r.json()["dailyBars"]
    assert len(bars) == 31 and bars[-1]["date"] == "2026-12-02"
    start = timeutil.day_bounds(datetime.fromisoformat(bars[0]["date"]).date(), "Europe/Madrid")[0]
    end = timeutil.day_bounds(datetime.fromisoformat(bars[-1]["date"]).date(), "Europe/Madrid")[1]
    assert round(sum(b["energy_kwh"] for b in bars) * 1e6) == _fifteen_minute_sum(dbs, series, zones, start, end)


def test_group_with_its_own_timezone(dbs, pipeline):
    """A group's own zone (Pacific/Kiritimati, +14:00) wins over its organization's;
    its days and months are that zone's, exact against the members' ledgers."""
    zones = {311: "Europe/Madrid", 312: "Asia/Kolkata"}
    now = _t("2026-03-29T00:30:00")  # Europe's DST change day
    series = _members(dbs, pipeline, zones, "UTC", now)
    with dbs.main.begin() as conn:
        groups_repo.set_timezone(conn, 900, "Pacific/Kiritimati")
    assert rollup.group_timezone(dbs.main_reader, 900) == "Pacific/Kiritimati"
    bars = rollup.group_daily_bars(dbs.telemetry, dbs.main_reader, 900, 31, now)
    _check_bars(dbs, series, zones, bars, "Pacific/Kiritimati", now)
    assert bars[-1]["date"] == "2026-03-29"
    months = rollup.group_energy_periods(dbs.telemetry, dbs.main_reader, 900, "month", 2, now)
    assert [m["date"] for m in months] == ["2026-02-01", "2026-03-01"]
    for m in months:
        start, end = timeutil.parse_instant(m["start"]), timeutil.parse_instant(m["end"])
        assert round(m["energy_kwh"] * 1e6) == _fifteen_minute_sum(dbs, series, zones, start, end)
    with dbs.main.begin() as conn:
        groups_repo.set_timezone(conn, 900, None)  # back to the organization's
    assert rollup.group_timezone(dbs.main_reader, 900) == "UTC"


@pytest.mark.parametrize("now_text, change_day, hours", [
    ("2026-03-29T23:30:00", "2026-03-29", 23), ("2026-10-25T23:30:00", "2026-10-25", 25)])
def test_group_days_across_a_dst_change(dbs, pipeline, now_text, change_day, hours):
    """In the group's zone (Europe/Madrid) the change day is a 23- or 25-hour bar,
    still exact against a Kolkata member's ledger."""
    zones = {331: "Asia/Kolkata", 332: "Europe/Madrid"}
    now = _t(now_text)
    series = _members(dbs, pipeline, zones, "Europe/Madrid", now)
    bars = rollup.group_daily_bars(dbs.telemetry, dbs.main_reader, 900, 31, now)
    _check_bars(dbs, series, zones, bars, "Europe/Madrid", now)
    bar = next(b for b in bars if b["date"] == change_day)
    assert timeutil.parse_instant(bar["end"]) - timeutil.parse_instant(bar["start"]) == hours * 3600


def test_group_state_of_charge_is_capacity_weighted(dbs, pipeline):
    zones = {321: "UTC", 322: "UTC"}
    now = _t("2026-12-01T18:45:00")
    _members(dbs, pipeline, zones, "UTC", now, soc=True)
    with dbs.main.begin() as conn:
        sids = {pid: registry.point(conn, pid, "battery_soc")["id"] for pid in zones}
    pipeline.ingest(ReadingBatch(np.array([sids[321], sids[322]]), np.array([now, now]), np.array([10.0, 90.0]),
                                 np.array([-1, -1]), [], "test"), refresh_summaries=False)
    assert rollup.group_latest(dbs.telemetry, dbs.main_reader, 900, "battery_soc") == pytest.approx(50.0)
    with dbs.main.begin() as conn:
        conn.execute(update(assets).where(assets.c.id == 321).values(attributes={"battery_capacity_kwh": 1.0}))
        conn.execute(update(assets).where(assets.c.id == 322).values(attributes={"battery_capacity_kwh": 9.0}))
    assert rollup.group_latest(dbs.telemetry, dbs.main_reader, 900, "battery_soc") == pytest.approx(82.0)


# ---------------------------------------------------------------- pure rules

def test_capacity_weighted_soc_rule():
    assert rules.capacity_weighted_mean([10.0, 90.0], [1.0, 9.0]) == pytest.approx(82.0)
    # an unknown capacity among the members: plain mean, not a partial weighting
    assert rules.capacity_weighted_mean([10.0, 90.0], [1.0, None]) == pytest.approx(50.0)
    # a member without a value does not count, its capacity neither
    assert rules.capacity_weighted_mean([10.0, None, 40.0], [2.0, 100.0, 1.0]) == pytest.approx(20.0)
    assert rules.capacity_weighted_mean([None, None], [1.0, 2.0]) is None
    with pytest.raises(ValueError):
        rules.capacity_weighted_mean([1.0], [])


def test_rules_per_metric_and_group_kind():
    for kind in rules.GROUP_KINDS:
        assert rules.rule_for(kind, "counter") is rules.Rule.SUM
        assert rules.rule_for(kind, MetricType.POWER) is rules.Rule.SUM
        assert rules.rule_for(kind, "soc") is rules.Rule.CAPACITY_WEIGHTED_MEAN
    with pytest.raises(rules.NoRule):
        rules.rule_for("work_order", "state")
    with pytest.raises(rules.NoRule):
        rules.rule_for("fleet", "power")
    assert rules.combine(rules.Rule.SUM, [1.5, None, 2.5]) == 4.0
    assert rules.combine(rules.Rule.SUM, [None]) is None
    assert rules.combine(rules.Rule.CAPACITY_WEIGHTED_MEAN, [10.0, 90.0], [3.0, 1.0]) == pytest.approx(30.0)
    assert rules.battery_capacity_kwh({"battery_capacity_kwh": "13.5"}) == 13.5
    assert rules.battery_capacity_kwh({"battery_capacity_kwh": 0}) is None
    assert rules.battery_capacity_kwh(None) is None


def test_sum_periods_adds_members_exactly():
    out = rules.sum_periods(np.array([0, 0, 86400, 172800]), np.array([5, 7, 11, 0]), np.array([1, 2, 0, 0]),
                            np.array([1, 3, 2, 0]), np.array([False, True, False, False]))
    assert out == {0: (12, 3, 4, True), 86400: (11, 0, 2, False)}

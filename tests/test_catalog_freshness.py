"""A change of a point's configuration applies to a running pipeline once its cached
config is ``MAX_AGE_S`` old: no restart, no cache to clear."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from helpers import batch, new_series
from wattline import clock
from wattline.domain.metrics import MetricType
from wattline.pipeline.series import MAX_AGE_S
from wattline.store import series_catalog
from wattline.store.registry import RegistryError

T0 = 1_700_000_100 // 900 * 900


@pytest.fixture
def later():
    """Moves the clock past the catalog's re-read age; puts it back afterwards."""
    moved = []

    def step():
        clock.set_now(clock.now() + MAX_AGE_S + 1)
        moved.append(MAX_AGE_S + 1)

    yield step
    clock.set_now(clock.now() - sum(moved))


def test_a_new_plausible_range_applies_within_seconds(dbs, pipeline, later):
    sid = new_series(dbs, MetricType.POWER, plausible_min=0.0, plausible_max=100.0)
    assert pipeline.ingest(batch(sid, [T0], [80.0])).quarantined == []

    with dbs.main.begin() as conn:  # administration, through the registry's main handle
        series_catalog.update_point_rules(conn, sid, plausible_max=50.0)
    assert pipeline.ingest(batch(sid, [T0 + 450], [80.0])).quarantined == []  # the cached rule, still
    later()
    r = pipeline.ingest(batch(sid, [T0 + 900, T0 + 1800], [80.0, 40.0]))  # the same Pipeline object

    assert [q.ts for q in r.quarantined] == [T0 + 900]
    assert "outside plausible range" in r.quarantined[0].reason and "50.0" in r.quarantined[0].reason
    assert r.readings_written == 1

    with dbs.main.begin() as conn:  # cleared: the metric's default range again
        series_catalog.update_point_rules(conn, sid, plausible_max=None)
    pipeline.catalog.invalidate([sid])  # a writer in this process need not wait
    assert pipeline.ingest(batch(sid, [T0 + 2700], [80.0])).quarantined == []


def test_a_new_reset_ratio_applies_within_seconds(dbs, pipeline, later):
    """A drop from 100 to 85 kWh is noise at ratio 0.8 and a reset at 0.9 (the default)."""
    sid = new_series(dbs, reset_ratio=0.8)
    pipeline.ingest(batch(sid, [T0, T0 + 900], [100.0, 85.0]))
    with dbs.main.begin() as conn:
        series_catalog.update_point_rules(conn, sid, reset_ratio=0.9)
    later()
    pipeline.ingest(batch(sid, [T0 + 1800, T0 + 2700], [100.0, 85.0]))
    with dbs.telemetry.connect() as c:
        deltas = c.exec_driver_sql(
            f"SELECT delta_milli_wh FROM ledger WHERE series_id = {sid} ORDER BY end_ts").scalars().all()
    # 100 -> 85 at 0.8: a dip (noise), nothing; back to the mark of 100: nothing;
    # 100 -> 85 at 0.9: a reset, energy counts from zero
    assert deltas == [0, 0, 85_000_000]


def test_a_new_asset_timezone_reaches_series_info_and_new_day_buckets(dbs, pipeline, later):
    sid = new_series(dbs, tz="UTC")
    pipeline.ingest(batch(sid, [T0], [1.0]))
    with dbs.main.begin() as conn:
        asset_id = conn.execute(sa.text(f"SELECT asset_id FROM points WHERE id = {sid}")).scalar()
        conn.execute(sa.text(f"UPDATE assets SET timezone = 'Asia/Kolkata' WHERE id = {asset_id}"))
    later()
    pipeline.ingest(batch(sid, [T0 + 5 * 86400], [2.0]))
    with dbs.telemetry.connect() as c:
        tz = c.exec_driver_sql(f"SELECT timezone FROM series_info WHERE series_id = {sid}").scalar()
        newest_day = c.exec_driver_sql(
            f"SELECT MAX(bucket_start) FROM aggregates WHERE series_id = {sid} AND period = 'day'").scalar()
    assert tz == "Asia/Kolkata"
    assert (newest_day + 19800) % 86400 == 0  # a local midnight of +05:30


def test_rule_changes_are_checked(dbs):
    sid = new_series(dbs, MetricType.POWER)
    with dbs.main.begin() as conn:
        with pytest.raises(RegistryError, match="above"):
            series_catalog.update_point_rules(conn, sid, plausible_min=10.0, plausible_max=5.0)
        with pytest.raises(RegistryError, match="not a point rule"):
            series_catalog.update_point_rules(conn, sid, metric_type="soc")
        with pytest.raises(RegistryError, match="no point"):
            series_catalog.update_point_rules(conn, 10**7, reset_ratio=0.5)


def test_a_stale_config_is_not_read_again_while_the_registry_is_unchanged(dbs, pipeline, later, monkeypatch):
    """The registry's version (moved by triggers on every write of points and assets)
    vouches for a stale config; any write to the registry makes it read again."""
    sid, other = new_series(dbs, MetricType.POWER), new_series(dbs, MetricType.POWER)
    pipeline.ingest(batch(sid, [T0], [1.0]))
    reads = []
    real = series_catalog.read_configs
    monkeypatch.setattr(series_catalog, "read_configs", lambda engine, ids: reads.append(set(ids)) or real(engine, ids))

    later()
    pipeline.ingest(batch(sid, [T0 + 900], [2.0]))
    assert reads == []  # stale by age, current by version: kept

    with dbs.main.begin() as conn:  # another point's rule: the registry moved
        series_catalog.update_point_rules(conn, other, plausible_max=50.0)
    pipeline.ingest(batch(sid, [T0 + 1800], [3.0]))
    assert reads == []  # not stale by age yet: a change applies within MAX_AGE_S, as before
    later()
    pipeline.ingest(batch(sid, [T0 + 2700], [4.0]))
    assert reads == [{sid}]

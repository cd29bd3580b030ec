"""The provisioning service (the one way assets and points are registered) and the
read-only resolver sources are given, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from wattline import provisioning
from wattline.config import Settings
from wattline.domain.metrics import MetricType
from wattline.domain.sources import PointDefinition, PointRegistration, StaticSeriesResolver
from wattline.security.crypto import decrypt_credentials
from wattline.simulator.vendor_cloud import DEFAULT_CREDENTIALS
from wattline.sources.vendors import InvalidCredentials, VendorRecord
from wattline.sources.vendors.normalize import records_to_batch
from wattline.store.series_resolver import RegistrySeriesResolver, preloaded_resolver
from wattline.store.tables import assets, points, vendor_accounts


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path / "data")


def _count(dbs, table):
    with dbs.main.connect() as c:
        return c.execute(select(func.count()).select_from(table)).scalar()


def test_a_vendor_account_with_wrong_keys_is_refused_and_nothing_is_written(dbs, settings):
    with pytest.raises(InvalidCredentials, match="missing key 'app_secret'"):
        with dbs.main.begin() as conn:
            provisioning.add_vendor_account(conn, settings, "solarman", "sm",
                                            {"app_id": "1", "email": "e", "password": "p"})
    with pytest.raises(InvalidCredentials, match="unknown key 'user_account'"):
        with dbs.main.begin() as conn:
            provisioning.add_vendor_account(conn, settings, "sungrow", "sg",
                                            {**DEFAULT_CREDENTIALS["sungrow"], "user_account": "x"})
    assert _count(dbs, vendor_accounts) == 0


def test_a_vendor_plant_gets_its_account_and_the_points_its_adapter_declares(dbs, settings):
    with dbs.main.begin() as conn:
        acc = provisioning.add_vendor_account(conn, settings, "sungrow", "sg", DEFAULT_CREDENTIALS["sungrow"],
                                              rate_limits=provisioning.UNLIMITED)
        pid = provisioning.add_vendor_plant(conn, "roof", "sungrow", "1129147", "Australia/Sydney")
    with dbs.main.connect() as conn:
        blob, account = conn.execute(select(vendor_accounts.c.credentials_encrypted, assets.c.vendor_account_id)
                                     .join(assets, assets.c.vendor_account_id == vendor_accounts.c.id)).one()
        rows = {r.key: r for r in conn.execute(select(points).where(points.c.asset_id == pid))}
    assert account == acc
    assert decrypt_credentials(settings.encryption_key, blob) == DEFAULT_CREDENTIALS["sungrow"]
    assert {k: (r.metric_type, r.vendor_field, r.expected_interval_s) for k, r in rows.items()} == {
        "energy_total": ("counter", "p83024", 900), "power": ("power", "p83033", 900),
        "energy_today": ("counter", "p83022", 900)}


def test_ensure_site_is_idempotent_and_follows_the_fleet(dbs):
    defs = [PointDefinition("load_power_kw", MetricType.POWER, expected_interval_s=300),
            PointDefinition("load_energy_kwh", MetricType.COUNTER, expected_interval_s=300)]
    with dbs.main.begin() as conn:
        first = provisioning.ensure_site(conn, "sim a", "Europe/Berlin", defs, latitude=52.5, capacity_kw=5.0)
    site = provisioning.SiteProvisioner(dbs.main)
    again = site.ensure_site("sim a", "Europe/Berlin", defs, latitude=48.1, capacity_kw=5.0)
    assert again == first
    with dbs.main.connect() as conn:
        (lat,) = conn.execute(select(assets.c.latitude).where(assets.c.name == "sim a")).one()
    assert lat == 48.1 and _count(dbs, points) == 2
    with dbs.main.begin() as conn:
        provisioning.add_asset(conn, "meter m", "meter", "UTC")
    with pytest.raises(provisioning.RegistryError, match="is a meter, not a site"):
        site.ensure_site("meter m", "UTC", defs)


def test_points_named_by_a_source_are_created_refused_or_found(dbs):
    with dbs.main.begin() as conn:
        aid = provisioning.add_asset(conn, "roof", "meter", "Europe/Berlin")
        provisioning.register_points(conn, aid, [PointDefinition("import", MetricType.COUNTER)])
    regs = [PointRegistration("roof", PointDefinition("import", MetricType.COUNTER)),
            PointRegistration("roof", PointDefinition("pv", MetricType.POWER)),
            PointRegistration("roof", PointDefinition("import2", MetricType.SOC)),
            PointRegistration("garage", PointDefinition("import", MetricType.COUNTER))]
    with dbs.main.begin() as conn:
        out = provisioning.register_points_by_name(conn, regs)
        clash = provisioning.register_points_by_name(
            conn, [PointRegistration("roof", PointDefinition("pv", MetricType.COUNTER))])
    assert out.asset_ids == {"roof": aid}
    assert out.created == ["roof/pv", "roof/import2"]
    assert out.refused == {("garage", "import"): "unknown asset 'garage' (add it with 'wattline assets add')"}
    assert clash.refused == {("roof", "pv"): "point 'pv' of 'roof' is a power series, not counter"}

    resolver = RegistrySeriesResolver(dbs.main_reader)
    pv = resolver.resolve(aid, "pv")
    assert pv.metric_type is MetricType.POWER and pv.timezone == "Europe/Berlin" and pv.unit == "kW"
    assert resolver.resolve(aid, "nothing") is None and resolver.resolve(aid + 99, "pv") is None
    # no cache across calls: a point added later is seen by the same resolver
    with dbs.main.begin() as conn:
        provisioning.register_points(conn, aid, [PointDefinition("late", MetricType.VOLTAGE)])
    assert resolver.resolve(aid, "late").metric_type is MetricType.VOLTAGE
    assert preloaded_resolver(dbs.main_reader, [aid]).series_ids(aid).keys() == {"import", "pv", "import2", "late"}


def test_vendor_records_become_a_batch_of_the_points_the_asset_has():
    from wattline.domain.sources import ResolvedSeries

    resolver = StaticSeriesResolver([
        ResolvedSeries(11, 7, "energy_total", MetricType.COUNTER, "UTC"),
        ResolvedSeries(12, 7, "power", MetricType.POWER, "UTC")])
    records = [VendorRecord(900, {"energy_total": 1.5, "power": 2.0, "energy_today": 0.5}, {"n": 1}),
               VendorRecord(1800, {"energy_total": 2.0}, {"n": 2})]
    batch = records_to_batch(resolver, 7, records, "vendor:test")
    assert batch.series_id.tolist() == [11, 12, 11] and batch.ts.tolist() == [900, 900, 1800]
    assert batch.value.tolist() == [1.5, 2.0, 2.0] and batch.raw_index.tolist() == [0, 0, 1]
    assert batch.raw_payloads == [{"n": 1}, {"n": 2}] and batch.source == "vendor:test"
    assert len(records_to_batch(resolver, 8, records, "vendor:test")) == 0  # another asset: nothing

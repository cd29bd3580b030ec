"""Site specs and the default fleet."""

import dataclasses

import pytest

from wattline.simulator import BatterySpec, LoadSpec, SiteKind, SiteSpec, default_sites


def test_default_sites_is_deterministic_and_prefix_stable():
    a = default_sites(40, seed=3)
    assert a == default_sites(40, seed=3)
    assert default_sites(10, seed=3) == a[:10]
    assert default_sites(40, seed=4) != a


def test_default_sites_is_varied():
    sites = default_sites(60, seed=1)
    assert len({s.id for s in sites}) == 60
    assert {s.kind for s in sites} == set(SiteKind)
    assert any(s.latitude < -30 for s in sites) and any(s.latitude > 55 for s in sites)
    assert any(abs(s.latitude) < 5 for s in sites)
    assert any(s.battery is None for s in sites) and any(s.battery is not None for s in sites)
    assert len({s.timezone for s in sites}) > 15
    assert {s.grid_frequency_hz for s in sites} == {50.0, 60.0}
    # modules face the equator (within the jitter)
    for s in sites:
        facing = 180.0 if s.latitude >= 0 else 0.0
        assert abs((s.azimuth_deg - facing + 180) % 360 - 180) <= 30.0


def test_site_round_trips_through_dict():
    for site in default_sites(8, seed=2):
        assert SiteSpec.from_dict(site.to_dict()) == site


@pytest.mark.parametrize(
    "change",
    [dict(latitude=91.0), dict(longitude=-181.0), dict(pv_capacity_kwp=-1.0), dict(tilt_deg=95.0), dict(kind="castle")],
)
def test_invalid_site_is_rejected(change):
    site = default_sites(1)[0]
    with pytest.raises(ValueError):
        dataclasses.replace(site, **change)


def test_invalid_battery_and_load_are_rejected():
    with pytest.raises(ValueError):
        BatterySpec(capacity_kwh=10, max_charge_kw=5, max_discharge_kw=5, soc_min_pct=90, soc_max_pct=20)
    with pytest.raises(ValueError):
        BatterySpec(capacity_kwh=0, max_charge_kw=5, max_discharge_kw=5)
    with pytest.raises(ValueError):
        LoadSpec(base_kw=5, peak_kw=1)

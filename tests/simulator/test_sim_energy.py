"""Energy balance at every step, counters, dispatch rules, over a year."""

import numpy as np
import pytest

from wattline.simulator import COUNTERS, default_sites, replay

T0 = 1704067200  # 2024-01-01T00:00Z
RTOL = 1e-9


@pytest.fixture(scope="module")
def year():
    sites = default_sites(16, seed=21)
    return sites, replay(sites, T0, T0 + 366 * 86400, 3600)


def _close(lhs, rhs):
    scale = np.maximum(np.maximum(np.abs(lhs), np.abs(rhs)), 1e-12)
    return np.abs(lhs - rhs) <= RTOL * scale


def test_site_bus_balances_every_step(year):
    _, r = year
    d = r.data
    lhs = d["solar_power_kw"] + d["grid_import_power_kw"] + d["battery_discharge_power_kw"]
    rhs = d["load_power_kw"] + d["grid_export_power_kw"] + d["battery_charge_power_kw"]
    assert np.all(_close(lhs, rhs))


def test_battery_losses_close_the_balance_with_cell_energies(year):
    sites, r = year
    d = r.data
    eta = np.array([np.sqrt(s.battery.round_trip_efficiency) if s.battery else 1.0 for s in sites])[:, None]
    charge, discharge = d["battery_charge_power_kw"], d["battery_discharge_power_kw"]
    charge_cells = charge * eta  # what reaches the cells
    discharge_cells = discharge / eta  # what leaves them
    # solar + import + discharge = load + export + charge + losses, cells' view
    lhs = d["solar_power_kw"] + d["grid_import_power_kw"] + discharge_cells
    rhs = d["load_power_kw"] + d["grid_export_power_kw"] + charge_cells + d["battery_loss_power_kw"]
    assert np.all(_close(lhs, rhs))
    assert np.all(d["battery_loss_power_kw"] >= 0)
    assert d["battery_loss_energy_kwh"][:, -1].sum() > 0


def test_counters_integrate_their_powers(year):
    _, r = year
    dt_h = r.step_s / 3600.0
    for counter, power in COUNTERS.items():
        c = r[counter]
        expected = np.cumsum(r[power] * dt_h, axis=1)
        np.testing.assert_allclose(c, expected, rtol=1e-9, atol=1e-9)
        assert np.all(np.diff(c, axis=1) >= 0), counter
    # the year's totals balance as well
    d = {k: r[k][:, -1] for k in COUNTERS}
    lhs = d["solar_energy_kwh"] + d["grid_import_energy_kwh"] + d["battery_discharge_energy_kwh"]
    rhs = d["load_energy_kwh"] + d["grid_export_energy_kwh"] + d["battery_charge_energy_kwh"]
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9)


def test_self_consumption_dispatch(year):
    sites, r = year
    d = r.data
    # never import and export at once, never charge and discharge at once
    assert not np.any((d["grid_import_power_kw"] > 0) & (d["grid_export_power_kw"] > 0))
    assert not np.any((d["battery_charge_power_kw"] > 0) & (d["battery_discharge_power_kw"] > 0))
    surplus = d["solar_power_kw"] - d["load_power_kw"]
    # the battery charges only from PV surplus and discharges only into a deficit
    assert np.all(d["battery_charge_power_kw"] <= np.maximum(surplus, 0) + 1e-9)
    assert np.all(d["battery_discharge_power_kw"] <= np.maximum(-surplus, 0) + 1e-9)
    for i, s in enumerate(sites):
        if s.battery is None:
            assert np.all(d["battery_charge_power_kw"][i] == 0)
            assert np.all(np.isnan(d["battery_soc_pct"][i]))
            continue
        assert d["battery_charge_power_kw"][i].max() <= s.battery.max_charge_kw + 1e-9
        assert d["battery_discharge_power_kw"][i].max() <= s.battery.max_discharge_kw + 1e-9
        # the battery is actually used
        assert d["battery_discharge_energy_kwh"][i, -1] > s.battery.capacity_kwh


def test_load_follows_the_clock_and_the_heat(year):
    sites, r = year
    import pandas as pd

    for i, s in enumerate(sites):
        if s.kind.value != "residential":
            continue
        local = pd.to_datetime(r.ts - 1800, unit="s", utc=True).tz_convert(s.timezone)
        load = r["load_power_kw"][i]
        evening = load[(local.hour >= 18) & (local.hour < 21)].mean()
        night = load[(local.hour >= 1) & (local.hour < 5)].mean()
        assert evening > 2 * night, s.name
        hot = r["ambient_temperature_c"][i] > 30
        mild = (r["ambient_temperature_c"][i] > 15) & (r["ambient_temperature_c"][i] < 22)
        hours = local.hour.to_numpy()
        if hot.sum() > 50:
            # compare like with like: afternoons only
            aft = (hours >= 13) & (hours < 17)
            assert load[hot & aft].mean() > load[mild & aft].mean(), s.name


def test_offices_and_shops_quieten_at_weekends(year):
    import pandas as pd

    sites, r = year
    checked = 0
    for i, s in enumerate(sites):
        if s.kind.value != "small_commercial":
            continue
        local = pd.to_datetime(r.ts - 1800, unit="s", utc=True).tz_convert(s.timezone)
        midday = (local.hour >= 10) & (local.hour < 15)
        weekend = local.day_of_week >= 5
        load = r["load_power_kw"][i]
        assert load[midday & ~weekend].mean() > 1.8 * load[midday & weekend].mean(), s.name
        checked += 1
    assert checked >= 1


def test_tou_periods():
    from wattline.simulator.load import tou_period

    hours = np.array([3, 8, 18, 18, 21.5, 23])
    weekend = np.array([False, False, False, True, False, False])
    assert tou_period(hours, weekend).tolist() == [0, 1, 2, 1, 1, 0]

"""Battery model: limits, efficiency, thermal, voltage, ageing, state round trip."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wattline.simulator import BatterySpec, BatteryState, default_sites, replay
from wattline.simulator.battery import BatteryArrays, BatteryBank, open_circuit_voltage_v

T0 = 1704067200


def _run(bank, states, request_kw, ambient_c=20.0, dt_s=300, t0=T0):
    n = request_kw.shape[1]
    arrays = BatteryArrays.from_states(bank, states)
    ts = t0 + dt_s * np.arange(1, n + 1)
    flows = bank.run(arrays, request_kw, np.full(request_kw.shape, ambient_c), np.full(n, dt_s), ts)
    return flows, arrays.to_states(bank)


def test_soc_stays_within_limits_over_a_year():
    sites = [s for s in default_sites(30, seed=8) if s.battery is not None]
    r = replay(sites, T0, T0 + 366 * 86400, 3600, metrics=["battery_soc_pct"])
    soc = r["battery_soc_pct"]
    lo = np.array([s.battery.soc_min_pct for s in sites])[:, None]
    hi = np.array([s.battery.soc_max_pct for s in sites])[:, None]
    assert np.all(soc >= lo) and np.all(soc <= hi)
    # and the limits are reached: the battery really cycles through its window
    assert np.mean(np.any(soc <= lo + 1e-9, axis=1)) > 0.5
    assert np.mean(np.any(soc >= hi - 1e-9, axis=1)) > 0.5


def test_limits_hold_under_extreme_requests():
    spec = BatterySpec(capacity_kwh=5, max_charge_kw=3, max_discharge_kw=4, soc_min_pct=20, soc_max_pct=80,
                       round_trip_efficiency=0.81)
    bank = BatteryBank([spec])
    request = np.concatenate([np.full(50, 1000.0), np.full(50, -1000.0)])[None, :]
    flows, _ = _run(bank, [BatteryState(soc_pct=50)], request)
    assert flows.soc_pct.max() == 80 and flows.soc_pct.min() == 20
    assert flows.charge_kw.max() <= 3 + 1e-12 and flows.discharge_kw.max() <= 4 + 1e-12
    # 30 points of SOC = 1.5 kWh stored; charging at 3 kW AC, 0.9 efficient, fills it in 0.5556 h
    charged_ac_kwh = flows.charge_kw.sum() * 300 / 3600
    assert charged_ac_kwh == pytest.approx(1.5 / 0.9, rel=1e-9)


def test_round_trip_efficiency():
    spec = BatterySpec(capacity_kwh=10, max_charge_kw=2, max_discharge_kw=2, soc_min_pct=0, soc_max_pct=100,
                       round_trip_efficiency=0.9)
    bank = BatteryBank([spec])
    request = np.concatenate([np.full(24, 1.0), np.full(200, -1.0)])[None, :]  # 2 kWh in, then drain
    flows, _ = _run(bank, [BatteryState(soc_pct=0)], request)
    energy_in = flows.charge_kw.sum() / 12
    energy_out = flows.discharge_kw.sum() / 12
    assert energy_in == pytest.approx(2.0, rel=1e-12)
    assert energy_out == pytest.approx(2.0 * 0.9, rel=1e-9)
    assert (flows.loss_kw.sum() / 12) == pytest.approx(0.2, rel=1e-9)


def test_stored_energy_moves_by_flows_minus_losses():
    spec = BatterySpec(capacity_kwh=13.5, max_charge_kw=5, max_discharge_kw=5, soc_min_pct=10, soc_max_pct=95,
                       round_trip_efficiency=0.88)
    bank = BatteryBank([spec])
    rng = np.random.default_rng(5)
    request = rng.normal(0, 4, (1, 3 * 288))  # three days, crossing two capacity refreshes
    start = BatteryState(soc_pct=40, health_pct=90.0, capacity_day=0)
    flows, _ = _run(bank, [start], request)
    soc = np.concatenate([[40.0], flows.soc_pct[0]])
    stored_kwh = np.diff(soc) / 100 * flows.usable_capacity_kwh[0]
    net_kwh = (flows.charge_kw[0] - flows.discharge_kw[0] - flows.loss_kw[0]) * 300 / 3600
    np.testing.assert_allclose(stored_kwh, net_kwh, rtol=1e-9, atol=1e-12)
    assert flows.usable_capacity_kwh[0, 0] == pytest.approx(13.5 * 0.9)


def test_no_battery_site_is_inert():
    bank = BatteryBank([None, BatterySpec(capacity_kwh=10, max_charge_kw=5, max_discharge_kw=5)])
    flows, states = _run(bank, [None, BatteryState(soc_pct=50)], np.full((2, 10), 3.0))
    assert np.all(flows.charge_kw[0] == 0) and np.all(np.isnan(flows.soc_pct[0]))
    assert states[0] is None and states[1].soc_pct > 50


def test_temperature_voltage_and_ageing_behave():
    spec = BatterySpec(capacity_kwh=10, max_charge_kw=5, max_discharge_kw=5, soc_min_pct=5, soc_max_pct=95)
    bank = BatteryBank([spec])
    # a day of idling at 35 degC, then hard cycling
    request = np.concatenate([np.zeros(288), np.tile(np.r_[np.full(30, 5.0), np.full(30, -5.0)], 20)])[None, :]
    flows, states = _run(bank, [BatteryState(soc_pct=50, temperature_c=10)], request, ambient_c=35.0)
    temp = flows.temperature_c[0]
    assert temp[0] > 10 and abs(temp[287] - 35) < 0.5  # lags towards ambient
    assert temp[288:].max() > 37  # heats when working
    # voltage: OCV over SOC, higher when charging than resting at the same SOC
    v = flows.voltage_v[0]
    ocv = open_circuit_voltage_v(flows.soc_pct[0], 16)
    charging = flows.charge_kw[0] > 0
    assert np.all(v[charging] > ocv[charging]) and np.all(v[flows.discharge_kw[0] > 0] < ocv[flows.discharge_kw[0] > 0])
    assert 16 * 2.8 <= v.min() and v.max() <= 16 * 3.6
    assert open_circuit_voltage_v(90, 16) > open_circuit_voltage_v(50, 16) > open_circuit_voltage_v(10, 16)
    # ageing: health only falls, cycles only rise, and cycling ages faster than resting
    h, c = flows.health_pct[0], flows.cycles[0]
    assert np.all(np.diff(h) <= 0) and np.all(np.diff(c) >= 0)
    assert c[-1] > 5
    rest_fade = (100 - h[287]) / 288
    work_fade = (h[287] - h[-1]) / (h.size - 288)
    assert work_fade > 5 * rest_fade
    assert states[0].health_pct == h[-1] and states[0].cycles == c[-1]


def test_usable_capacity_follows_health_once_a_day():
    spec = BatterySpec(capacity_kwh=10, max_charge_kw=5, max_discharge_kw=5)
    bank = BatteryBank([spec])
    aged = BatteryState(soc_pct=50, health_pct=80.0, capacity_health_pct=100.0, capacity_day=T0 // 86400)
    flows, _ = _run(bank, [aged], np.zeros((1, 576)), t0=T0)
    cap = flows.usable_capacity_kwh[0]
    assert np.all(cap[:287] == 10.0)  # rest of the day: yesterday's capacity
    assert np.all(cap[288:] == pytest.approx(8.0, rel=1e-3))  # next UTC day: today's health


def test_battery_state_round_trips_through_dict_and_json():
    state = BatteryState(soc_pct=42.5, temperature_c=31.25, health_pct=97.5, cycles=123.4,
                         capacity_health_pct=97.6, capacity_day=19723)
    assert BatteryState.from_dict(state.to_dict()) == state
    assert BatteryState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    # older or foreign dicts: unknown keys ignored, missing optional keys defaulted
    assert BatteryState.from_dict({"soc_pct": 10, "extra": 1}) == BatteryState(soc_pct=10.0)


def test_restored_soc_outside_the_window_is_brought_inside():
    spec = BatterySpec(capacity_kwh=10, max_charge_kw=5, max_discharge_kw=5, soc_min_pct=20, soc_max_pct=80)
    bank = BatteryBank([spec])
    flows, _ = _run(bank, [BatteryState(soc_pct=99.0)], np.zeros((1, 3)))
    assert np.all(flows.soc_pct == 80.0)
    assert np.all(flows.charge_kw == 0) and np.all(flows.discharge_kw == 0)


@settings(max_examples=60, deadline=None)
@given(
    cap=st.floats(0.5, 2000),
    p_charge=st.floats(0, 1000),
    p_discharge=st.floats(0, 1000),
    lo=st.floats(0, 49),
    hi=st.floats(51, 100),
    rte=st.floats(0.5, 1.0),
    soc0=st.floats(0, 100),
    dt_s=st.sampled_from([60, 300, 900, 3600]),
    request=st.lists(st.floats(-5000, 5000), min_size=1, max_size=300),
)
def test_any_request_sequence_respects_limits_and_conserves_energy(cap, p_charge, p_discharge, lo, hi, rte, soc0, dt_s, request):
    spec = BatterySpec(capacity_kwh=cap, max_charge_kw=p_charge, max_discharge_kw=p_discharge,
                       soc_min_pct=lo, soc_max_pct=hi, round_trip_efficiency=rte)
    bank = BatteryBank([spec])
    req = np.array(request)[None, :]
    flows, _ = _run(bank, [BatteryState(soc_pct=soc0)], req, dt_s=dt_s)
    soc = flows.soc_pct[0]
    assert np.all(soc >= lo) and np.all(soc <= hi)
    assert np.all(flows.charge_kw[0] <= np.maximum(req[0], 0) + 1e-9)
    assert np.all(flows.discharge_kw[0] <= np.maximum(-req[0], 0) + 1e-9)
    assert np.all(flows.charge_kw[0] <= p_charge + 1e-9) and np.all(flows.discharge_kw[0] <= p_discharge + 1e-9)
    start = min(max(soc0, lo), hi)
    stored = np.diff(np.concatenate([[start], soc])) / 100 * flows.usable_capacity_kwh[0]
    net = (flows.charge_kw[0] - flows.discharge_kw[0] - flows.loss_kw[0]) * dt_s / 3600
    np.testing.assert_allclose(stored, net, rtol=1e-9, atol=1e-9 * cap)


def test_one_battery_alone_steps_exactly_as_it_does_in_a_fleet():
    # a bank of one takes a Python-float path (the emulated clouds simulate each home
    # alone); it must give bit for bit what the vectorised path gives the same battery
    sites = [s for s in default_sites(12, seed=3) if s.battery is not None][:3]
    rng = np.random.default_rng(5)
    request = rng.normal(0.0, 4.0, (len(sites), 3 * 288))
    request[:, 100:140] = 50.0  # held at the top, then the bottom, of the window
    request[:, 400:460] = -50.0
    bank = BatteryBank([s.battery for s in sites])
    fleet, fleet_states = _run(bank, bank.initial_states(), request)
    for k, site in enumerate(sites):
        one = BatteryBank([site.battery])
        alone, alone_states = _run(one, one.initial_states(), request[k:k + 1])
        for name in fleet.__dataclass_fields__:
            assert np.array_equal(getattr(alone, name)[0], getattr(fleet, name)[k], equal_nan=True), name
        assert alone_states[0] == fleet_states[k]

"""One battery sign for every adapter: Wattline stores ``battery_w`` + discharging,
- charging (wattline.domain.energy_flow), whatever the vendor's own sign. Each row is
a real capture (tests/vendors/fixtures/, copies of ../shared/vendor-fixtures/) whose
battery direction the capture itself states (a status, a discharge counter, the
balance), or a capture with only the battery's direction turned round, in the
vendor's own sign."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from wattline.domain.energy_flow import DISCHARGING, battery_convention
from wattline.sources.vendors import get_adapter_class
from wattline.sources.vendors.fronius.mapping import parse_power_flow as fronius_power_flow
from wattline.sources.vendors.fronius.push import parse_push, push_values
from wattline.sources.vendors.mondo.mapping import parse_live_usage
from wattline.sources.vendors.registry import vendor_types
from wattline.sources.vendors.selectronic import parse_hfdata
from wattline.sources.vendors.solaredge.mapping import parse_power_flow as solaredge_power_flow

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def selectronic(payload) -> dict:
    [rec], _ = parse_hfdata(payload)
    return rec.values


def fronius_local(payload) -> dict:
    [rec], _ = fronius_power_flow(payload)
    return rec.values


def fronius_push(payload) -> dict:
    return push_values(parse_push(payload))


def mondo(payload) -> dict:
    return parse_live_usage(payload)[1]


def turned(payload: dict, path: tuple, value) -> dict:
    """The capture with one field changed (the battery's direction, in the vendor's sign)."""
    out = copy.deepcopy(payload)
    node = out
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return out


# (adapter, what the capture shows, payload, parser, expected battery_w in kW)
CASES = [
    # SP PRO at night: no solar, the load from the battery; its own sign is + discharging
    ("selectronic", "discharging", load("selectronic/point_local_solarmonweb_2025-03-20.json"), selectronic,
     0.948486328125),
    # status "Discharging", STORAGE -> Load
    ("solaredge", "discharging", load("solaredge/current_power_flow_kW_storage.json"), solaredge_power_flow, 1.36),
    # status "Charging", PV -> STORAGE
    ("solaredge", "charging", load("solaredge/current_power_flow_W_SYNTHETIC_ha.json"), solaredge_power_flow, -0.25),
    # GEN24 on standby trickling out; Fronius' P_Akku is + discharging
    ("fronius", "discharging", load("fronius/GetPowerFlowRealtimeData_GEN24_storage.json"), fronius_local,
     0.000159078),  # rounded to 1e-9 kW
    ("fronius", "charging", turned(load("fronius/GetPowerFlowRealtimeData_GEN24_storage.json"),
                                   ("Body", "Data", "Site", "P_Akku"), -1500.0), fronius_local, -1.5),
    # the push contract's example: batteryW -700 (its - is discharging), batteryOutWhInterval 35
    ("fronius", "discharging", load("fronius-push/example-request.json"), fronius_push, 0.7),
    ("fronius", "charging", turned(load("fronius-push/example-request.json"), ("batteryW",), 700), fronius_push,
     -0.7),
    # the capture balances only with the battery charging: 9.58 + 2.3 = 4.35 + 7.52 (Mondo's + charging)
    ("mondo", "charging", load("mondo/liveusage_widget_2026-09-11.json"), mondo, -7.52),
    ("mondo", "discharging", turned(load("mondo/liveusage_widget_2026-09-11.json"),
                                    ("liveUsageData", "battery", "value"), -1.25), mondo, 1.25),
]


@pytest.mark.parametrize("vendor, direction, payload, parse, expected", CASES,
                         ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_discharging_is_positive_for_every_adapter(vendor, direction, payload, parse, expected):
    got = parse(payload)["battery_w"]
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert (got > 0) == (direction == "discharging")
    assert battery_convention(vendor) == DISCHARGING  # what the energy flow reads it as


def test_every_adapter_with_a_battery_power_point_is_in_the_table():
    with_battery = {v for v in vendor_types() if any(p.key == "battery_w" for p in get_adapter_class(v).points)}
    covered = {c[0] for c in CASES}
    assert with_battery == covered  # a new adapter with battery_w adds its rows here
    for vendor in covered:
        assert {c[1] for c in CASES if c[0] == vendor} >= {"discharging"}


def test_the_capture_balances_with_the_stored_sign():
    """solar + grid + battery = load (W at one instant), with Wattline's signs."""
    for vendor, payload, parse, tolerance_kw in (
            ("mondo", load("mondo/liveusage_widget_2026-09-11.json"), mondo, 0.02),
            ("solaredge", load("solaredge/current_power_flow_kW_storage.json"), solaredge_power_flow, 0.02),
            ("fronius", load("fronius/GetPowerFlowRealtimeData_GEN24_storage.json"), fronius_local, 0.05)):
        v = parse(payload)
        balance = v.get("solar_w", 0.0) + v["grid_w"] + v["battery_w"] - v["load_w"]
        assert abs(balance) <= tolerance_kw, (vendor, v)

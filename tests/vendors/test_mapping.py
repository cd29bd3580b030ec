"""Field mapping on real captures (Sungrow) and the seed's example record (Solarman)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from helpers import shared_dir

from wattline.sources.vendors import VendorAuthError, VendorRequestError
from wattline.sources.vendors.http import TokenInvalid
from wattline.sources.vendors.parsing import BadValue
from wattline.sources.vendors.solarman import POINTS as SOLARMAN_POINTS, parse_station_item
from wattline.sources.vendors.models import VendorPointSpec
from wattline.sources.vendors.sungrow import (
    check_envelope,
    local_stamp,
    parse_login,
    parse_point_data,
    parse_ps_list_item,
    parse_stamp,
)
from wattline.domain.metrics import MetricType

SUNGROW_FIXTURES = shared_dir() / "vendor-fixtures" / "sungrow-isolarcloud"

needs_fixtures = pytest.mark.skipif(
    not SUNGROW_FIXTURES.is_dir(), reason=f"vendor fixtures not found at {SUNGROW_FIXTURES}"
)

# The capture asked for p83033 (power, W) and p83022 (daily yield, Wh) only.
CAPTURED_POINTS = [
    VendorPointSpec("power", MetricType.POWER, "p83033", "W"),
    VendorPointSpec("energy_today", MetricType.COUNTER, "p83022", "Wh", daily_reset=True),
]
BRISBANE = "Australia/Brisbane"  # the capture's plant: ps_timezone "GMT+10", no DST


def load(name: str):
    return json.loads((SUNGROW_FIXTURES / name).read_text())


def utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=timezone.utc).timestamp())


# -- Solarman: the seed's example record ---------------------------------------------------------

SEED_RECORD = {
    "stationId": 64786338,
    "lastUpdateTime": 1763468017.0,
    "generationPower": 50000,
    "generationValue": 1250.5,
    "generationUploadTotalOffset": 50000.5,
    "generationMonth": 37500.0,
    "generationYear": 450000.0,
    "generationTotal": 500000.0,
    "installedCapacity": 2000.0,
    "prYesterday": 0.85,
}


def test_solarman_seed_record_maps_exactly():
    rec = parse_station_item(SEED_RECORD)
    assert rec.ts == 1763468017 and isinstance(rec.ts, int)
    assert rec.values == {"energy_total": 50000.5, "power": 50.0, "energy_today": 1250.5}
    assert rec.raw is SEED_RECORD  # the whole record, untouched


def test_solarman_points_declare_units():
    units = {p.key: (p.vendor_field, p.vendor_unit, p.unit, p.factor) for p in SOLARMAN_POINTS}
    assert units == {
        "energy_total": ("generationUploadTotalOffset", "kWh", "kWh", 1.0),
        "power": ("generationPower", "W", "kW", 1e-3),
        "energy_today": ("generationValue", "kWh", "kWh", 1.0),
    }


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"generationPower": None}, "generationPower is null"),
        ({"generationValue": "N/A"}, "generationValue is not numeric"),
        ({"lastUpdateTime": True}, "lastUpdateTime is a boolean"),
        ({"generationUploadTotalOffset": float("nan")}, "not finite"),
    ],
)
def test_solarman_bad_values_name_the_field(change, reason):
    with pytest.raises(BadValue, match=reason):
        parse_station_item({**SEED_RECORD, **change})


def test_solarman_missing_field_is_named():
    item = dict(SEED_RECORD)
    del item["generationUploadTotalOffset"]
    with pytest.raises(BadValue, match="generationUploadTotalOffset is missing"):
        parse_station_item(item)


# -- Sungrow: the real captures ----------------------------------------------------------------------


@needs_fixtures
def test_sungrow_point_data_capture_maps_units_and_local_time():
    payload = load("queryMutiPointDataList_5min_p83022-p83033_2022-02-09.json")
    data = check_envelope(payload)
    records, rejected, empty = parse_point_data(data, "1129147_11_0_0", BRISBANE, CAPTURED_POINTS)
    assert (len(records), len(rejected), empty) == (288, 0, 0)
    by_ts = {r.ts: r for r in records}
    # "20220209000000" is local midnight in GMT+10 = 2022-02-08T14:00Z
    assert records[0].ts == utc(2022, 2, 8, 14, 0)
    peak = by_ts[utc(2022, 2, 9, 3, 55)]  # local 13:55, the day's highest power
    assert peak.values["power"] == pytest.approx(9.521)  # "9521.0" W -> kW
    assert peak.raw == {"ps_key": "1129147_11_0_0", "time_stamp": "20220209135500", "p83033": "9521.0",
                        "p83022": peak.raw["p83022"]}
    last = records[-1]
    assert last.values["energy_today"] == pytest.approx(56.1)  # "56100.0" Wh -> kWh
    assert all(b.ts - a.ts == 300 for a, b in zip(records, records[1:]))


@needs_fixtures
def test_sungrow_capture_with_future_slots_skips_dash_values():
    payload = load("queryMutiPointDataList_5min_p83022-p83033_2022-02-10.json")
    records, rejected, empty = parse_point_data(check_envelope(payload), "1129147_11_0_0", BRISBANE, CAPTURED_POINTS)
    assert empty == 196 and rejected == []  # "--" in every point: not readings yet
    assert len(records) == 288 - 196
    assert records[-1].raw["time_stamp"] == "20220210073500"
    assert records[-1].values["energy_today"] == pytest.approx(0.2)


@needs_fixtures
def test_sungrow_capture_errors_map_to_exceptions():
    with pytest.raises(TokenInvalid) as exc:
        check_envelope(load("error_E00003_token_login_invalid.json"))
    assert exc.value.code == "E00003" and isinstance(exc.value, VendorAuthError)
    wrong_password = load("login_response_incorrect_password.json")
    assert check_envelope(wrong_password)["login_state"] == "0"  # result_code is still "1"
    with pytest.raises(VendorAuthError, match="login_state=0"):
        parse_login(check_envelope(wrong_password))
    empty = load("queryDevicePointMinuteDataList_response_empty.json")
    assert parse_point_data(check_envelope(empty), "1129147_11_0_0", BRISBANE) == ([], [], 0)


@needs_fixtures
def test_sungrow_ps_list_capture_paginates_and_maps():
    # upstream redacted the coordinates leaving invalid JSON; repair a local copy
    text = (SUNGROW_FIXTURES / "getPsList_response_INVALID-JSON-upstream-redacted-latlong.json").read_text()
    data = check_envelope(json.loads(text.replace('":,', '":null,')))
    assert data["rowCount"] == 1 and len(data["pageList"]) == 1
    plant = parse_ps_list_item(data["pageList"][0])
    assert plant.vendor_plant_id == "1129147" and plant.name == "MickMake"
    assert plant.capacity_kw == 10.0
    # install_date "2022-01-28 11:29:13" at GMT+10
    assert plant.start_operating_ts == utc(2022, 1, 28, 1, 29, 13)
    assert plant.timezone is None and plant.latitude is None


def test_sungrow_envelope_other_errors():
    with pytest.raises(VendorAuthError, match="appkey"):
        check_envelope({"result_code": "E00000", "result_msg": "er_invalid_appkey", "result_data": None})
    with pytest.raises(VendorRequestError) as exc:
        check_envelope({"result_code": "-1", "result_msg": "er_parameter_value_invalid", "result_data": None})
    assert exc.value.code == "-1"


def test_sungrow_rejects_malformed_slots_with_raw_and_reason():
    data = {
        "7_11_0_0": {
            "p83024": {"20240101120000": "1000.0", "20240101121500": "1100.0", "20240101123000": "x"},
            "p83033": {"20240101120000": "500.0", "20240101121500": None, "20240101123000": "1.0"},
            "p83022": {"20240101120000": "10.0", "20240101123000": "--"},
        }
    }
    records, rejected, empty = parse_point_data(data, "7_11_0_0", "UTC")
    assert [r.values for r in records] == [{"energy_total": 1.0, "power": 0.5, "energy_today": 0.01}]
    reasons = {r.raw["time_stamp"]: r.reason for r in rejected}
    assert "p83033 is null" in reasons["20240101121500"] and "p83022 is missing" in reasons["20240101121500"]
    assert "p83024 is not numeric" in reasons["20240101123000"]
    assert rejected[0].raw["p83024"] == "1100.0"  # the raw values as they arrived


def test_sungrow_local_time_is_dst_aware():
    tz = "Australia/Sydney"
    # DST ends 2024-04-07 03:00 AEDT -> 02:00 AEST: 02:30 happens twice, first occurrence wins
    assert parse_stamp("20240407023000", tz) == utc(2024, 4, 6, 15, 30)
    assert parse_stamp("20240407033000", tz) == utc(2024, 4, 6, 17, 30)  # AEST (+10)
    # DST starts 2024-10-06 02:00 -> 03:00: 02:30 does not exist
    with pytest.raises(BadValue, match="does not exist"):
        parse_stamp("20241006023000", tz)
    assert parse_stamp("20241006030000", tz) == utc(2024, 10, 5, 16, 0)  # AEDT (+11)
    assert local_stamp(utc(2024, 10, 5, 16, 0), tz) == "20241006030000"
    with pytest.raises(BadValue):
        parse_stamp("2024-10-06 03:00", tz)

"""plant_history: what the emulated vendor clouds serve for a PV-only plant."""

from datetime import date

import numpy as np
import pytest

from wattline.domain.timeutil import local_midnight
from wattline.simulator import plant_history

START = 1672531200  # 2023-01-01T00:00Z
PLANT = dict(seed=42, latitude=52.52, longitude=13.40, capacity_kw=250.0, timezone="Europe/Berlin",
             start_operating_ts=START + 3 * 86400 + 7 * 3600 + 123)
MAR = 1711238400  # 2024-03-24T00:00Z


def _history(from_ts, to_ts, step_s=900, **over):
    return plant_history(**{**PLANT, **over}, from_ts=from_ts, to_ts=to_ts, step_s=step_s)


def test_shape_and_grid():
    h = _history(MAR, MAR + 7 * 86400)
    assert set(h) == {"ts", "power_kw", "energy_total_kwh", "energy_today_kwh"}
    assert h["ts"].dtype == np.int64 and len(h["ts"]) == 7 * 96
    assert np.all(h["ts"] % 900 == 0) and h["ts"][0] == MAR and h["ts"][-1] < MAR + 7 * 86400
    assert all(len(v) == len(h["ts"]) for v in h.values())


def test_overlapping_windows_are_identical():
    a = _history(MAR, MAR + 10 * 86400)
    b = _history(MAR + 4 * 86400 + 17, MAR + 30 * 86400)  # other start, other length
    common, ia, ib = np.intersect1d(a["ts"], b["ts"], return_indices=True)
    assert len(common) > 500
    for key in ("power_kw", "energy_total_kwh", "energy_today_kwh"):
        assert np.array_equal(a[key][ia], b[key][ib]), key


@pytest.mark.parametrize("tz", ["UTC", "Asia/Kathmandu", "America/Santiago", "Australia/Lord_Howe"])
def test_windows_agree_in_any_zone(tz):
    # windows starting exactly on UTC and local midnights, or anywhere
    ref = _history(MAR - 2 * 86400, MAR + 6 * 86400, step_s=300, timezone=tz)
    for start, length, step in [(MAR, 86400, 900), (MAR + 86400, 3600, 300), (MAR + 3 * 86400 + 451, 2 * 86400, 3600)]:
        h = _history(start, start + length, step_s=step, timezone=tz)
        common, ia, ib = np.intersect1d(h["ts"], ref["ts"], return_indices=True)
        assert len(common) == len(h["ts"]) > 0
        assert np.array_equal(h["energy_total_kwh"][ia], ref["energy_total_kwh"][ib])
        assert np.array_equal(h["energy_today_kwh"][ia], ref["energy_today_kwh"][ib])


def test_lifetime_counter_does_not_depend_on_window_or_step():
    late = MAR + 200 * 86400
    coarse = _history(late, late + 2 * 86400, step_s=3600)
    fine = _history(late - 5 * 86400, late + 2 * 86400, step_s=300)
    pos = np.searchsorted(fine["ts"], coarse["ts"])
    assert np.array_equal(fine["ts"][pos], coarse["ts"])
    assert np.array_equal(fine["energy_total_kwh"][pos], coarse["energy_total_kwh"])
    assert np.array_equal(fine["energy_today_kwh"][pos], coarse["energy_today_kwh"])
    # coarse power is the mean of the fine power over the hour
    hourly = np.array([fine["power_kw"][(fine["ts"] > t - 3600) & (fine["ts"] <= t)].mean() for t in coarse["ts"]])
    np.testing.assert_allclose(coarse["power_kw"], hourly, rtol=1e-9, atol=1e-9)


def test_counter_is_consistent_with_power_and_monotonic():
    h = _history(MAR, MAR + 14 * 86400)
    delta = np.diff(h["energy_total_kwh"])
    np.testing.assert_allclose(delta, h["power_kw"][1:] * 0.25, rtol=1e-9, atol=1e-9)
    assert np.all(delta >= 0)
    assert h["power_kw"].max() <= 250.0
    assert h["power_kw"].max() > 50.0
    # a year of operation gives a plausible lifetime total for Berlin (~1,000 kWh/kWp)
    year = _history(PLANT["start_operating_ts"] + 365 * 86400, PLANT["start_operating_ts"] + 365 * 86400 + 3600)
    assert 700 * 250 < year["energy_total_kwh"][0] < 1300 * 250


def test_energy_today_resets_at_local_midnight_including_dst():
    # 2024-03-31 is a 23-hour day in Berlin
    h = _history(MAR, MAR + 10 * 86400)
    for day in (date(2024, 3, 30), date(2024, 3, 31), date(2024, 4, 1)):
        m = local_midnight(day, "Europe/Berlin")
        at = np.searchsorted(h["ts"], m)
        assert h["ts"][at] == m
        assert h["energy_today_kwh"][at] == 0.0
        # just before midnight: the whole previous local day
        prev = local_midnight(date.fromordinal(day.toordinal() - 1), "Europe/Berlin")
        total = h["energy_total_kwh"]
        assert h["energy_today_kwh"][at - 1] == pytest.approx(total[at - 1] - total[np.searchsorted(h["ts"], prev)], rel=1e-12)
        assert h["energy_today_kwh"][at - 1] > 0
    assert local_midnight(date(2024, 4, 1), "Europe/Berlin") - local_midnight(date(2024, 3, 31), "Europe/Berlin") == 23 * 3600


def test_night_is_dark_and_nothing_before_start():
    h = _history(MAR, MAR + 3 * 86400)
    hour_utc = (h["ts"] % 86400) // 3600
    assert np.all(h["power_kw"][(hour_utc >= 21) | (hour_utc < 3)] == 0.0)
    s = PLANT["start_operating_ts"]
    first = _history(START, s + 86400)
    assert first["ts"][0] >= s
    assert first["energy_total_kwh"][0] == 0.0
    assert np.all(first["energy_today_kwh"] <= first["energy_total_kwh"] + 1e-12)
    assert len(_history(START, s - 3600)["ts"]) == 0


def test_a_window_holding_only_the_start_instant():
    # a plant starting at UTC midnight, asked for exactly its first instant
    h = _history(START, START + 1, start_operating_ts=START)
    assert h["ts"].tolist() == [START]
    assert h["power_kw"].tolist() == [0.0] and h["energy_total_kwh"].tolist() == [0.0]
    assert h["energy_today_kwh"].tolist() == [0.0]


def test_plants_differ_by_seed_and_arguments_are_checked():
    a = _history(MAR, MAR + 86400)
    b = _history(MAR, MAR + 86400, seed=43)
    assert not np.array_equal(a["power_kw"], b["power_kw"])
    with pytest.raises(ValueError):
        _history(MAR, MAR + 86400, step_s=600 + 1)
    with pytest.raises(ValueError):
        _history(MAR, MAR + 86400, timezone="Nowhere/Atlantis")

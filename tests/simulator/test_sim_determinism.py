"""Same seed and period give the same series; chunking and windows do not matter."""

import dataclasses

import numpy as np

from wattline.simulator import METRICS, ReplayRun, default_sites, replay

T0 = 1704067200


def test_two_runs_are_identical():
    sites = default_sites(12, seed=5)
    a = replay(sites, T0, T0 + 10 * 86400, 300)
    b = replay(default_sites(12, seed=5), T0, T0 + 10 * 86400, 300)
    assert np.array_equal(a.ts, b.ts)
    for key in METRICS:
        assert np.array_equal(a[key], b[key], equal_nan=True), key


def test_a_different_seed_gives_different_weather_and_load():
    sites = default_sites(3, seed=5)
    reseeded = [dataclasses.replace(s, seed=s.seed + 1) for s in sites]
    a = replay(sites, T0, T0 + 2 * 86400, 900, metrics=["solar_power_kw", "load_power_kw"])
    b = replay(reseeded, T0, T0 + 2 * 86400, 900, metrics=["solar_power_kw", "load_power_kw"])
    assert not np.array_equal(a["load_power_kw"], b["load_power_kw"])
    assert not np.array_equal(a["solar_power_kw"], b["solar_power_kw"])


def test_chunking_does_not_change_results():
    sites = default_sites(7, seed=6)
    big = replay(sites, T0, T0 + 5 * 86400, 300)
    small = replay(sites, T0, T0 + 5 * 86400, 300, chunk_elements=7 * 37)  # 37-step chunks
    for key in METRICS:
        np.testing.assert_allclose(small[key], big[key], rtol=1e-12, atol=1e-12, equal_nan=True, err_msg=key)


def test_a_replay_continued_from_its_final_state_equals_one_long_replay():
    sites = default_sites(6, seed=7)
    whole = replay(sites, T0, T0 + 4 * 86400, 600)
    first = replay(sites, T0, T0 + 2 * 86400, 600)
    second = replay(sites, T0 + 2 * 86400, T0 + 4 * 86400, 600, initial_state=first.final_state)
    for key in ("battery_soc_pct", "grid_import_energy_kwh", "battery_cycles", "solar_energy_kwh"):
        joined = np.concatenate([first[key], second[key]], axis=1)
        np.testing.assert_allclose(joined, whole[key], rtol=1e-12, atol=1e-12, equal_nan=True, err_msg=key)


def test_streaming_chunks_and_progress():
    sites = default_sites(4, seed=8)
    run = ReplayRun(sites, T0, T0 + 86400, 300, metrics=["solar_power_kw"], chunk_elements=4 * 100)
    seen = []
    chunks = list(run.chunks(on_progress=lambda done, total: seen.append((done, total))))
    assert [c.data["solar_power_kw"].shape[1] for c in chunks] == [100, 100, 88]
    assert seen == [(100, 288), (200, 288), (288, 288)]
    full = replay(sites, T0, T0 + 86400, 300, metrics=["solar_power_kw"])
    np.testing.assert_array_equal(np.concatenate([c.data["solar_power_kw"] for c in chunks], axis=1), full["solar_power_kw"])
    frame = full.site_frame(sites[0].id)
    assert list(frame.columns) == ["solar_power_kw"] and len(frame) == 288
    assert str(frame.index.tz) == "UTC"

"""The simulator as a source: registry, live rounds through the pipeline, restarts,
failing sites, replay into the database, and the CLI's clean shutdown."""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from sqlalchemy import delete, select

from wattline.cli_simulate import simulator_ports
from wattline.config import Settings
from wattline.context import open_context
from wattline.domain.timeutil import parse_instant
from wattline.domain.quality import Flag
from wattline.simulator import COUNTERS, METRICS, BatteryState, LiveSimulator, default_sites, replay
from wattline.simulator import load as load_module
from wattline.simulator import service as service_module
from wattline.simulator.service import (
    LiveService, asset_name, register_sites, replay_into_db, site_metrics,
)
from wattline.store import registry
from wattline.store.tables import assets, points, simulator_state

T0 = 1718409600  # 2024-06-15T00:00Z
STEP = 300
NOON = T0 + 12 * 3600


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def ctx(settings):
    c = open_context(settings)
    yield c
    c.close()


@pytest.fixture(scope="module")
def sites():
    fleet = default_sites(4, seed=0)
    # the tests need both kinds: with and without a battery
    assert any(s.battery is None for s in fleet) and any(s.battery is not None for s in fleet)
    return fleet


def _readings(ctx, series_id):
    with ctx.dbs.telemetry.connect() as c:
        return c.exec_driver_sql(
            f"SELECT ts, value, raw_event_id FROM readings WHERE series_id = {int(series_id)} ORDER BY ts").all()


def _count(ctx, table, where=""):
    with ctx.dbs.telemetry.connect() as c:
        return c.exec_driver_sql(f"SELECT COUNT(*) FROM {table} {where}").scalar()


def _ledger(ctx, series_id):
    with ctx.dbs.telemetry.connect() as c:
        return c.exec_driver_sql(
            "SELECT start_ts, end_ts, delta_milli_wh, flags FROM ledger "
            f"WHERE series_id = {int(series_id)} ORDER BY end_ts").all()


def _values(samples):
    return {s.site_id: s.values for s in samples}


def _uninterrupted(sites, rounds):
    """The reference: one simulator stepping every round without a database."""
    sim = LiveSimulator(sites, STEP)
    out = [sim.step(NOON + k * STEP) for k in range(1, rounds + 1)]
    return sim, out


# -- registry -----------------------------------------------------------------------


def test_register_sites_is_idempotent_and_types_points_by_metric(ctx, sites):
    first = register_sites(simulator_ports(ctx), sites, STEP)
    second = register_sites(simulator_ports(ctx), sites, STEP)
    assert first == second
    with ctx.dbs.main.connect() as c:
        for site in sites:
            row = registry.asset_by_name(c, asset_name(site))
            assert row["kind"] == "site" and row["timezone"] == site.timezone
            assert row["capacity_kw"] == pytest.approx(site.pv_capacity_kwp)
            pts = {r.key: r for r in c.execute(select(points).where(points.c.asset_id == row["id"]))}
            assert set(pts) == set(site_metrics(site)) == set(first[site.id])
            for key, p in pts.items():
                assert p.metric_type == METRICS[key].metric_type.value
                assert p.expected_interval_s == STEP
                assert first[site.id][key] == p.id
        assert c.execute(select(assets.c.id).where(assets.c.name.like("sim %"))).all().__len__() == len(sites)
    no_battery = next(s for s in sites if s.battery is None)
    assert "battery_soc_pct" not in first[no_battery.id]
    assert 0 < len(first[no_battery.id]) < len(METRICS)


# -- live rounds --------------------------------------------------------------------


def test_a_round_ingests_one_reading_per_metric_per_site_with_raw_payloads(ctx, sites):
    svc = LiveService(simulator_ports(ctx), sites, STEP)
    r1 = svc.run_round(NOON)
    assert r1.errors == {} and r1.state_saved
    assert [line.site_id for line in r1.lines] == [s.id for s in sites]
    assert r1.readings == sum(len(site_metrics(s)) for s in sites)
    ref = LiveSimulator(sites, STEP).step(NOON)
    for sample in ref:
        for key, value in sample.values.items():
            rows = _readings(ctx, svc.series[sample.site_id][key])
            assert [(ts, v) for ts, v, _ in rows] == [(NOON, pytest.approx(value, rel=1e-12, abs=1e-12))]
            assert rows[0][2] is not None  # linked to the raw event it came from
    # one raw payload per site, kept exactly
    with ctx.dbs.telemetry.connect() as c:
        payloads = [json.loads(p) for (p,) in c.exec_driver_sql("SELECT payload FROM raw_events")]
    assert sorted(p["site_id"] for p in payloads) == sorted(s.id for s in sites)
    assert all(p["ts"] == NOON and p["source"] == "simulator" for p in payloads)

    r2 = svc.run_round(NOON + STEP)
    assert r2.errors == {}
    for site in sites:
        for counter in COUNTERS:
            if counter not in svc.series[site.id]:
                continue
            sid = svc.series[site.id][counter]
            (_, a, _), (_, b, _) = _readings(ctx, sid)
            entries = _ledger(ctx, sid)
            assert len(entries) == 1
            start, end, milli, flags = entries[0]
            assert (start, end) == (NOON, NOON + STEP) and not flags & Flag.RESET
            assert milli == round(b * 1e6) - round(a * 1e6)
    assert _count(ctx, "simulator_state") == len(sites)


def test_restart_restores_state_and_continues_like_an_uninterrupted_run(settings, sites):
    K = 6
    ctx1 = open_context(settings)
    first = LiveService(simulator_ports(ctx1), sites, STEP)
    for k in range(1, K + 1):
        assert first.run_round(NOON + k * STEP).errors == {}
    at_shutdown = {s.id: first.sim.site_state(s.id) for s in sites}
    ctx1.close()

    ctx2 = open_context(settings)  # a new process, as it were
    second = LiveService(simulator_ports(ctx2), sites, STEP)
    assert sorted(second.restore_report.restored) == sorted(s.id for s in sites)
    assert second.restore_report.fast_forwarded == {}
    for site in sites:
        st = second.sim.site_state(site.id)
        assert st == at_shutdown[site.id]  # battery, counters, last_ts
        if site.battery is not None:  # and it is not simply a new battery
            assert st.battery == at_shutdown[site.id].battery != BatteryState.initial(site.battery)
    nxt = second.run_round(NOON + (K + 1) * STEP)
    _, reference = _uninterrupted(sites, K + 1)
    got = {line.site_id: line for line in nxt.lines}
    for sample in reference[-1]:
        assert got[sample.site_id].soc_pct == sample.values.get("battery_soc_pct")
    stored = {s.id: _readings(ctx2, second.series[s.id]["load_energy_kwh"])[-1][1] for s in sites}
    assert stored == {s.site_id: s.values["load_energy_kwh"] for s in reference[-1]}

    # control: a service that does not restore produces something else
    fresh = LiveService(simulator_ports(ctx2), sites, STEP, restore=False)
    other = fresh.sim.step(NOON + (K + 1) * STEP)
    assert _values(other) != _values(reference[-1])
    ctx2.close()


def test_state_lost_after_ingest_is_fast_forwarded_on_restart(ctx, sites, monkeypatch):
    K = 4
    svc = LiveService(simulator_ports(ctx), sites, STEP)
    for k in range(1, K):
        svc.run_round(NOON + k * STEP)

    def broken_save(*a, **kw):
        raise RuntimeError("disk full")

    monkeypatch.setattr(service_module, "save_states", broken_save)
    last = svc.run_round(NOON + K * STEP)
    assert not last.state_saved and last.errors == {} and last.readings > 0
    monkeypatch.undo()
    with ctx.dbs.telemetry.connect() as c:
        assert {r.last_ts for r in c.execute(select(simulator_state))} == {NOON + (K - 1) * STEP}

    restarted = LiveService(simulator_ports(ctx), sites, STEP)
    rep = restarted.restore_report
    assert rep.fast_forwarded == {s.id: NOON + K * STEP for s in sites}
    assert rep.counters_adopted == []  # the deterministic re-run matched the stored readings
    for site in sites:
        assert restarted.sim.site_state(site.id) == svc.sim.site_state(site.id)
    nxt = restarted.run_round(NOON + (K + 1) * STEP)
    _, reference = _uninterrupted(sites, K + 1)
    assert {l.site_id: l.load_kw for l in nxt.lines} == {s.site_id: s.values["load_power_kw"] for s in reference[-1]}


def test_state_lost_altogether_continues_counters_from_the_readings(ctx, sites):
    svc = LiveService(simulator_ports(ctx), sites, STEP)
    for k in range(1, 4):
        svc.run_round(NOON + k * STEP)
    with ctx.dbs.telemetry.begin() as c:
        c.execute(delete(simulator_state))
    restarted = LiveService(simulator_ports(ctx), sites, STEP)
    assert sorted(restarted.restore_report.counters_adopted) == sorted(s.id for s in sites)
    restarted.run_round(NOON + 4 * STEP)
    for site in sites:
        for counter in COUNTERS:
            if counter not in restarted.series[site.id]:
                continue
            sid = restarted.series[site.id][counter]
            values = [v for _, v, _ in _readings(ctx, sid)]
            assert values == sorted(values)  # never goes back
            assert not any(flags & Flag.RESET for *_, flags in _ledger(ctx, sid))


def test_rounds_and_restart_on_each_backend(dbs, sites):
    """SQLite and PostgreSQL (COPY upsert of the JSON state)."""
    from wattline.context import AppContext
    from wattline.pipeline import Pipeline

    c = AppContext(Settings(), dbs, Pipeline(dbs.telemetry, dbs.main_reader))
    svc = LiveService(simulator_ports(c), sites, STEP)
    for k in range(1, 4):
        assert svc.run_round(NOON + k * STEP).state_saved
    again = LiveService(simulator_ports(AppContext(Settings(), dbs, Pipeline(dbs.telemetry, dbs.main_reader))),
                        sites, STEP)
    assert sorted(again.restore_report.restored) == sorted(s.id for s in sites)
    assert again.sim.state_dict() == svc.sim.state_dict()
    assert _count(c, "readings") == 3 * sum(len(site_metrics(s)) for s in sites)


# -- failing sites ------------------------------------------------------------------


def test_a_site_with_an_invalid_timezone_does_not_stop_the_round(ctx, sites):
    broken = dataclasses.replace(sites[1], id="site-bad", name="Nowhere 99", timezone="Mars/Olympus_Mons")
    fleet = [sites[0], broken, sites[2]]
    svc = LiveService(simulator_ports(ctx), fleet, STEP)
    result = svc.run_round(NOON)
    assert set(result.errors) == {"site-bad"} and "Olympus" in result.errors["site-bad"]
    assert [line.site_id for line in result.lines] == [sites[0].id, sites[2].id]
    assert result.readings == len(site_metrics(sites[0])) + len(site_metrics(sites[2]))
    assert len(_readings(ctx, svc.series[sites[2].id]["solar_power_kw"])) == 1


def test_a_site_raising_inside_the_model_does_not_stop_the_round(ctx, sites, monkeypatch):
    victim = sites[2].id
    original = load_module.LoadModel.__init__

    def poisoned(self, fleet_sites):
        original(self, fleet_sites)
        ids = [s.id for s in fleet_sites]
        if victim in ids:
            self.base_kw = self.base_kw.copy()
            self.base_kw[ids.index(victim)] = np.nan

    svc = LiveService(simulator_ports(ctx), sites, STEP)
    monkeypatch.setattr(load_module.LoadModel, "__init__", poisoned)
    result = svc.run_round(NOON)
    assert set(result.errors) == {victim} and "non-finite" in result.errors[victim]
    assert len(result.lines) == len(sites) - 1
    assert _readings(ctx, svc.series[victim]["load_power_kw"]) == []
    assert len(_readings(ctx, svc.series[sites[0].id]["load_power_kw"])) == 1
    with ctx.dbs.telemetry.connect() as c:
        saved = {r.site_key for r in c.execute(select(simulator_state))}
    assert saved == {s.id for s in sites} - {victim}


def test_a_site_whose_ingest_fails_is_rewound_and_caught_up_next_round(ctx, sites, monkeypatch):
    svc = LiveService(simulator_ports(ctx), sites, STEP)
    assert svc.run_round(NOON + STEP).errors == {}
    victim = sites[0].id
    victim_series = set(svc.series[victim].values())
    real_ingest = ctx.pipeline.ingest

    def picky(batch, **kw):
        if victim_series & set(batch.series_id.tolist()):
            raise RuntimeError("constraint violated")
        return real_ingest(batch, **kw)

    monkeypatch.setattr(ctx.pipeline, "ingest", picky)
    r2 = svc.run_round(NOON + 2 * STEP)
    assert set(r2.errors) == {victim} and "ingest failed" in r2.errors[victim]
    assert len(r2.lines) == len(sites) - 1
    assert svc.sim.site_state(victim).last_ts == NOON + STEP  # rewound: nothing was stored
    assert len(_readings(ctx, svc.series[sites[1].id]["load_energy_kwh"])) == 2  # the others were
    monkeypatch.undo()

    r3 = svc.run_round(NOON + 3 * STEP)
    assert r3.errors == {}
    _, reference = _uninterrupted(sites, 3)
    want = {s.site_id: s for s in reference[-1]}[victim]
    # the victim's reading covers both intervals: its counter includes them all
    rows = _readings(ctx, svc.series[victim]["load_energy_kwh"])
    assert [ts for ts, _, _ in rows] == [NOON + STEP, NOON + 3 * STEP]
    assert rows[-1][1] == pytest.approx(want.values["load_energy_kwh"], rel=1e-12)
    assert svc.sim.site_state(victim) == _uninterrupted(sites, 3)[0].site_state(victim)


# -- the loop -----------------------------------------------------------------------


class FakeClock:
    def __init__(self, t):
        self.t = float(t)

    def __call__(self):
        return self.t

    def wait(self, seconds):
        self.t += seconds
        return False


def test_run_forever_runs_at_once_then_on_interval_boundaries(ctx, sites):
    svc = LiveService(simulator_ports(ctx), sites[:2], STEP)
    clock = FakeClock(NOON + 1000)  # 100 s after a boundary
    seen = []
    n = svc.run_forever(threading.Event(), max_rounds=3, on_round=lambda r: seen.append((r.ts, clock())),
                        clock=clock, wait=clock.wait)
    assert n == 3
    assert [ts for ts, _ in seen] == [NOON + 900, NOON + 1200, NOON + 1500]
    assert seen[0][1] == NOON + 1000  # the first round did not wait
    assert [t for _, t in seen[1:]] == [NOON + 1200, NOON + 1500]

    # a restart within the same interval waits for the next boundary; a stop request ends the loop
    again = LiveService(simulator_ports(ctx), sites[:2], STEP)
    clock.t = NOON + 1550
    stop = threading.Event()
    ts_seen = []

    def on_round(r):
        ts_seen.append(r.ts)
        stop.set()

    assert again.run_forever(stop, on_round=on_round, clock=clock, wait=clock.wait) == 1
    assert ts_seen == [NOON + 1800]


def test_run_forever_catches_up_after_falling_behind(ctx, sites):
    svc = LiveService(simulator_ports(ctx), sites[:2], STEP)
    clock = FakeClock(NOON + 10)
    seen = []

    def on_round(r):
        seen.append(r)
        if len(seen) == 1:
            clock.t += 3 * STEP  # e.g. the machine was suspended

    svc.run_forever(threading.Event(), max_rounds=2, on_round=on_round, clock=clock, wait=clock.wait)
    assert [r.ts for r in seen] == [NOON, NOON + 3 * STEP]
    assert seen[1].errors == {}
    (ts, v, _), = _readings(ctx, svc.series[sites[0].id]["solar_energy_kwh"])[1:]
    assert ts == NOON + 3 * STEP
    r = replay(sites[:2], NOON - STEP + 1, NOON + 3 * STEP + 1, STEP)
    assert v == pytest.approx(r["solar_energy_kwh"][0, -1], rel=1e-12, abs=1e-12)


def test_a_signal_during_a_round_lets_it_finish_then_stops(ctx, sites):
    from wattline.simulator.service import install_signal_handlers

    svc = LiveService(simulator_ports(ctx), sites[:2], STEP)
    real_round = svc.run_round

    def round_interrupted_midway(ts):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the round is being computed
        return real_round(ts)

    svc.run_round = round_interrupted_midway
    stop = threading.Event()
    before = signal.getsignal(signal.SIGTERM)
    restore = install_signal_handlers(stop)
    try:
        clock = FakeClock(NOON + 5)
        done = []
        # without the stop request the fake clock moves on and more rounds would run
        n = svc.run_forever(stop, max_rounds=3, on_round=done.append, clock=clock,
                            wait=lambda s: stop.wait(min(s, 5)) or clock.wait(s))
        assert n == 1 and stop.is_set()
        assert done[0].errors == {} and done[0].state_saved  # the round completed
        assert _count(ctx, "simulator_state") == 2
        with pytest.raises(KeyboardInterrupt):  # a second signal does not wait
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    finally:
        restore()
    assert signal.getsignal(signal.SIGTERM) == before


# -- replay -------------------------------------------------------------------------


def test_replay_into_db_stores_every_reading_and_the_ledger_matches_the_counters(ctx, sites):
    fleet = sites[:3]
    start, end, step = T0, T0 + 86400, 900
    progress = []
    res = replay_into_db(simulator_ports(ctx), fleet, start, end, step, lambda d, t: progress.append((d, t)), max_batch=2000)
    T = 96
    per_step = sum(len(site_metrics(s)) for s in fleet)
    assert res.steps == T and res.readings == T * per_step and res.quarantined == 0
    assert res.batches >= T * per_step // 2000
    assert _count(ctx, "readings") == T * per_step
    assert progress[-1] == (T, T) and [d for d, _ in progress] == sorted(d for d, _ in progress)

    series = register_sites(simulator_ports(ctx), fleet, step)
    ref = replay(fleet, start, end, step)
    for i, site in enumerate(fleet):
        sol = [v for _, v, _ in _readings(ctx, series[site.id]["solar_power_kw"])]
        np.testing.assert_allclose(sol, ref["solar_power_kw"][i], rtol=1e-12)
        for counter in COUNTERS:
            if counter not in series[site.id]:
                continue
            sid = series[site.id][counter]
            rows = _readings(ctx, sid)
            assert len(rows) == T
            entries = _ledger(ctx, sid)
            assert len(entries) == T - 1 and not any(f & Flag.RESET for *_, f in entries)
            ledger_kwh = sum(e[2] for e in entries) / 1e6
            assert ledger_kwh == pytest.approx(rows[-1][1] - rows[0][1], abs=1e-6)
    assert any(sum(e[2] for e in _ledger(ctx, series[s.id]["solar_energy_kwh"])) > 0 for s in fleet)

    # idempotent: the same replay again changes nothing
    again = replay_into_db(simulator_ports(ctx), fleet, start, end, step)
    assert again.readings == T * per_step and _count(ctx, "readings") == T * per_step

    # live mode continues from the replay's end (state saved), as if the replay went on
    svc = LiveService(simulator_ports(ctx), fleet, step)
    assert sorted(svc.restore_report.restored) == sorted(s.id for s in fleet)
    nxt = svc.run_round(end)
    longer = replay(fleet, start, end + 1, step)
    assert {l.site_id: l.soc_pct for l in nxt.lines} == {
        s.id: (float(longer["battery_soc_pct"][i, -1]) if s.battery else None) for i, s in enumerate(fleet)}


# -- CLI ----------------------------------------------------------------------------


def test_parse_interval():
    from wattline.cli_simulate import parse_interval

    assert [parse_interval(x) for x in ("1m", "5m", "15m", "30s", "1h", "90")] == [60, 300, 900, 30, 3600, 90]
    import typer

    for bad in ("0m", "5x", "", "-1m"):
        with pytest.raises(typer.BadParameter):
            parse_interval(bad)


def _env(tmp_path):
    env = {**os.environ, "WATTLINE_DATA_DIR": str(tmp_path / "cli-data"), "PYTHONUNBUFFERED": "1"}
    env.pop("WATTLINE_MAIN_URL", None)
    env.pop("WATTLINE_TELEMETRY_URL", None)
    return env


def test_cli_live_mode_stops_cleanly_on_sigterm(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "wattline.cli", "simulate", "--interval", "1m", "--sites", "3"],
                            env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout], daemon=True)
    reader.start()
    out = []
    deadline = time.monotonic() + 60
    try:
        while not any("round done" in l for l in out):
            assert time.monotonic() < deadline, "no round within 60 s:\n" + "".join(out)
            try:
                out.append(lines.get(timeout=1))
            except queue.Empty:
                assert proc.poll() is None, f"exited early:\n{''.join(out)}\n{proc.stderr.read()}"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    while not lines.empty():
        out.append(lines.get())
    text = "".join(out)
    assert code == 0, text + proc.stderr.read()
    assert "stop requested" in text
    assert len(re.findall(r"solar .* SOC .* load .* grid", text)) >= 3

    rounds = re.findall(r"^(\S+)\s+round done", text, re.M)
    ctx = open_context(Settings(data_dir=tmp_path / "cli-data"))
    try:
        with ctx.dbs.telemetry.connect() as c:
            state = c.execute(select(simulator_state)).all()
        assert len(state) == 3
        assert {r.last_ts for r in state} == {parse_instant(rounds[-1])}
        per_round = sum(len(site_metrics(s)) for s in default_sites(3, 0))
        assert _count(ctx, "readings") == per_round * len(rounds)
    finally:
        ctx.close()


def test_cli_replay_writes_the_period(tmp_path):
    p = subprocess.run([sys.executable, "-m", "wattline.cli", "simulate", "replay", "--from", "2024-03-01T00:00Z",
                        "--to", "2024-03-01T06:00Z", "--step", "1h", "--sites", "2"],
                       env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    per_step = sum(len(site_metrics(s)) for s in default_sites(2, 0))
    assert f"{6 * per_step} readings" in p.stdout
    ctx = open_context(Settings(data_dir=tmp_path / "cli-data"))
    try:
        assert _count(ctx, "readings") == 6 * per_step
    finally:
        ctx.close()


def test_replay_run_final_state_describes_what_was_simulated(sites):
    from wattline.simulator import ReplayRun

    run = ReplayRun(sites[:2], T0, T0 + 86400, STEP, chunk_elements=2 * 48)  # 48 steps a chunk
    chunks = run.chunks()
    first = next(chunks)
    assert len(first.ts) == 48
    # stopped after one chunk: the state is that of the chunk's last sample, not of the period's end
    assert {st.last_ts for st in run.final_state().values()} == {int(first.ts[-1])}
    ref = replay(sites[:2], T0, T0 + 48 * STEP, STEP)
    assert {sid: st.counters_kwh for sid, st in run.final_state().items()} == {
        sid: st.counters_kwh for sid, st in ref.final_state.items()}

"""Energy flows (the Sankey of a system's page): the pure split, the health-dot rule,
and GET /api/data/flows over real HTTP on both databases.

The split conserves energy: for a balanced input what leaves each source equals its
value and what reaches each sink (load, battery, grid) equals its value; no flow is
negative or larger than its source or sink whatever the input. Battery signs follow
the vendor (Selectronic + discharging, Fronius + charging).
"""

from __future__ import annotations

import math

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from world import make_ctx
from wattline import clock, system_admin
from wattline.api.app import create_app
from wattline.domain import energy_flow as ef
from wattline.domain import system_health as sh
from wattline.domain.readings import ReadingBatch
from wattline.security.sessions import COOKIE_NAME, issue_session
from wattline.security.users import create_user, get_user_principal
from wattline.store import flow_queries, registry, systems_repo
from wattline.store.latest_values import DatabaseLatestValues

PASSWORD = "a long test password"
power = st.floats(min_value=0, max_value=20_000, allow_nan=False, allow_infinity=False)


def _node_sums(split: ef.FlowSplit) -> tuple[dict, dict]:
    out, inn = {}, {}
    for (a, b), v in split.flows.items():
        out[a] = out.get(a, 0.0) + float(v)
        inn[b] = inn.get(b, 0.0) + float(v)
    return out, inn


# ------------------------------------------------------------------ the pure split


@settings(max_examples=400, deadline=None)
@given(solar=power, load=power, battery=st.floats(-10_000, 10_000, allow_nan=False),
       convention=st.sampled_from([ef.DISCHARGING, ef.CHARGING]))
def test_balanced_flows_conserve_energy_at_every_node(solar, load, battery, convention):
    # the grid balances the rest, as it does physically
    b_dis = battery if convention == ef.DISCHARGING else -battery
    grid = load - solar - b_dis
    split = ef.power_flows_w(solar, load, battery, grid, convention)
    out, inn = _node_sums(split)
    tol = 1e-6 * max(1.0, solar, load, abs(battery), abs(grid))
    assert all(v >= 0 for v in split.flows.values())
    assert out["solar"] == pytest.approx(solar, abs=tol)
    assert inn["load"] == pytest.approx(load, abs=tol)
    assert out["battery"] == pytest.approx(max(b_dis, 0), abs=tol)
    assert inn["battery"] == pytest.approx(max(-b_dis, 0), abs=tol)
    assert out["grid"] == pytest.approx(max(grid, 0), abs=tol)
    assert inn["grid"] == pytest.approx(max(-grid, 0), abs=tol)
    assert split.imbalance == pytest.approx(0, abs=tol)


@settings(max_examples=300, deadline=None)
@given(solar=power, load=power, battery=st.floats(-10_000, 10_000, allow_nan=False),
       grid=st.floats(-20_000, 20_000, allow_nan=False))
def test_unbalanced_flows_never_exceed_a_source_or_a_sink(solar, load, battery, grid):
    split = ef.split_flows(solar, load, battery, grid)
    out, inn = _node_sums(split)
    tol = 1e-6 * max(1.0, solar, load, abs(battery), abs(grid))
    assert all(v >= 0 for v in split.flows.values())
    assert out["solar"] <= solar + tol and inn["load"] <= load + tol
    assert out["battery"] <= max(battery, 0) + tol and inn["battery"] <= max(-battery, 0) + tol
    assert out["grid"] <= max(grid, 0) + tol and inn["grid"] <= max(-grid, 0) + tol
    assert split.imbalance == pytest.approx(solar + battery + grid - load, abs=tol)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(power, power, st.floats(-5000, 5000, allow_nan=False)), min_size=1, max_size=50))
def test_interval_flows_are_the_sum_of_the_sub_interval_flows(rows):
    s = np.array([r[0] for r in rows])
    ld = np.array([r[1] for r in rows])
    b = np.array([r[2] for r in rows])
    g = ld - s - b
    total = ef.energy_flows_wh(s, ld, b, g)
    out, inn = _node_sums(total)
    assert out["solar"] == pytest.approx(s.sum(), rel=1e-9, abs=1e-6)
    assert inn["load"] == pytest.approx(ld.sum(), rel=1e-9, abs=1e-6)
    assert out["battery"] == pytest.approx(np.maximum(b, 0).sum(), rel=1e-9, abs=1e-6)
    assert inn["battery"] == pytest.approx(np.maximum(-b, 0).sum(), rel=1e-9, abs=1e-6)


def test_worked_examples():
    # noon: 5 kW solar, 1 kW load, battery charging 3 kW (Selectronic: -3000), 1 kW exported
    f = ef.power_flows_w(5000, 1000, -3000, -1000, ef.DISCHARGING).flows
    assert (f[("solar", "load")], f[("solar", "battery")], f[("solar", "grid")]) == (1000, 3000, 1000)
    assert f[("grid", "load")] == f[("battery", "load")] == 0
    # the same on Fronius' convention (+ charging)
    assert ef.power_flows_w(5000, 1000, 3000, -1000, ef.CHARGING).flows == f
    # evening: no solar, 2 kW load, battery 1.5 kW, grid the rest
    f = ef.power_flows_w(0, 2000, 1500, 500, ef.DISCHARGING).flows
    assert (f[("battery", "load")], f[("grid", "load")]) == (1500, 500)
    # off-peak: the grid charges the battery while covering the load
    f = ef.power_flows_w(0, 800, -2000, 2800, ef.DISCHARGING).flows
    assert (f[("grid", "load")], f[("grid", "battery")]) == (800, 2000)
    # a day: the battery charged at noon and discharged at night both show
    day = ef.energy_flows_wh([4000, 0], [1000, 3000], [-3000, 3000], [0, 0])
    assert day.flows[("solar", "battery")] == 3000 and day.flows[("battery", "load")] == 3000
    assert ef.split_flows(4000, 4000, 0, 0).flows[("solar", "battery")] == 0  # summed first: lost


def test_missing_terms():
    # no battery point: 0; one of solar/load/grid missing: from the balance
    assert ef.power_flows_w(3000, None, None, -1000).flows[("solar", "load")] == 2000
    assert ef.power_flows_w(None, 2000, 0, 500).flows[("solar", "load")] == 1500
    assert ef.power_flows_w(3000, 1000, None, None) is not None
    assert ef.power_flows_w(3000, None, None, None) is None  # only solar: nothing to state
    assert ef.flow_list(None) == []
    assert ef.pick_terms({"power": 2.0, "grid_w": -1.0}) == {"solar": 2.0, "load": None, "battery": None,
                                                              "grid": -1.0}
    # NaN sub-intervals: one term derived, two skipped
    t = ef.energy_flows_wh([1000, np.nan, np.nan], [np.nan, 500, np.nan], [0, 0, 0], [-200, 500, 100])
    assert t.flows[("solar", "load")] == 800 and t.flows[("grid", "load")] == 500
    with pytest.raises(ValueError):
        ef.split_flows(1, 1, 0, 0, battery_positive="up")


def test_one_battery_sign_for_every_vendor():
    assert {ef.battery_convention(v) for v in ("selectronic", "solaredge", "fronius", "mondo", None)} == {
        "discharging"}


@pytest.mark.parametrize("age_s, colour", [(0, "green"), (299, "green"), (300, "yellow"), (900, "yellow"),
                                           (901, "red"), (86400, "red"), (-30, "green")])
def test_health_dot_by_the_age_of_the_last_successful_poll(age_s, colour):
    now = 1_800_000_000
    assert sh.poll_health(now - age_s, now) == colour


def test_health_dot_without_a_success_and_age_text():
    assert sh.poll_health(None, 1_800_000_000) == "unknown"
    assert [sh.age_text(t, 10_000) for t in (None, 9_990, 9_000, 3_000, -200_000)] == [
        "never", "10 s ago", "16 min ago", "1 h ago", "2 d ago"]


# ------------------------------------------------------------------ the route

STEP = 60
SPAN = 3 * 3600


def _profile(ts: np.ndarray) -> dict[str, np.ndarray]:
    """kW: solar in the first half, a battery charging then discharging, grid balancing."""
    k = (ts - ts[0]) / (ts[-1] - ts[0])
    solar = np.where(k < 0.5, 4.0, 0.0)
    load = np.full(len(ts), 1.0)
    charge = np.where(k < 0.5, 2.0, -0.5)  # + charging
    grid = load + charge - solar  # + import
    return {"solar_w": solar, "load_w": load, "charge": charge, "grid_w": grid}


@pytest.fixture
def world(dbs, tmp_path):
    ctx = make_ctx(dbs, tmp_path)
    ctx.latest_values = DatabaseLatestValues(dbs.telemetry)
    now = clock.now_s()
    with dbs.main.begin() as conn:
        for name, role in (("alice", "user"), ("carol", "user"), ("bob", "viewer"), ("root", "admin")):
            create_user(conn, name, PASSWORD, role)
        sel = system_admin.add_system(conn, ctx.settings, "Home", "selectronic", "101", "alice",
                                      credentials={"email": "a@example.com", "password": "pw"})
        fro = system_admin.add_system(conn, ctx.settings, "Shed", "fronius", "202", "alice", credentials={})
        foreign = system_admin.add_system(conn, ctx.settings, "Carol", "selectronic", "404", "carol",
                                          credentials={"email": "c@example.com", "password": "pw"})
        system_admin.share_system(conn, sel, "bob", "alice")
        system_admin.add_composite(conn, "both", "Home and shed", [sel, fro])
        system_admin.add_composite(conn, "mixed", "With carol's", [sel, foreign])
        cookies = {n: issue_session(ctx.settings.encryption_key, get_user_principal(conn, n))
                   for n in ("alice", "carol", "bob", "root")}
        series = {sid: {p["key"]: p["id"] for p in systems_repo.system_points(conn, sid)} for sid in (sel, fro)}
    ts = np.arange(now - SPAN, now + 1, STEP, dtype=np.int64) // STEP * STEP
    prof = _profile(ts)
    sids, tss, vals = [], [], []
    for sid, battery in ((sel, -prof["charge"]), (fro, -prof["charge"])):  # stored + discharging, every vendor
        for key, v in (("solar_w", prof["solar_w"]), ("load_w", prof["load_w"]), ("grid_w", prof["grid_w"]),
                       ("battery_w", battery)):
            sids.append(np.full(len(ts), series[sid][key]))
            tss.append(ts)
            vals.append(v)
    ctx.pipeline.ingest(ReadingBatch(np.concatenate(sids), np.concatenate(tss), np.concatenate(vals),
                                     np.full(sum(map(len, sids)), -1), [], "test"))
    yield dict(ctx=ctx, sel=sel, fro=fro, foreign=foreign, cookies=cookies, ts=ts, prof=prof)


@pytest.fixture
def served(world):
    import socket
    import threading
    import time

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    world["app"] = app = create_app(world["ctx"])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    def get(params, who="alice"):
        c = {COOKIE_NAME: world["cookies"][who]} if who else {}
        return httpx.get(url + "/api/data/flows", params=params, cookies=c)

    yield get
    server.should_exit = True
    thread.join(10)


def _flows(body) -> dict[tuple[str, str], float]:
    return {(f["from"], f["to"]): f["value"] for f in body["flows"]}


def test_flows_now_from_the_latest_values_in_w(world, served):
    body = served({"systemId": world["sel"], "range": "now"}).json()
    assert body["unit"] == "W" and body["range"] == "now" and body["asOf"] == int(world["ts"][-1])
    f = _flows(body)
    assert [tuple(x) for x in f] == list(ef.FLOWS)
    # the last instant: no solar, 1 kW load, battery discharging 0.5 kW, grid 0.5 kW
    assert f[("battery", "load")] == pytest.approx(500) and f[("grid", "load")] == pytest.approx(500)
    assert sum(f.values()) == pytest.approx(1000)
    # a Fronius system, the same readings: the same flows (one battery sign for every vendor)
    assert _flows(served({"systemId": world["fro"]}).json()) == f


def test_flows_of_a_range_integrate_the_ledger_in_wh(world, served):
    for rng in ("1H", "6H", "24H", "7D", "30D"):
        _check_range(world, served, rng)


def _check_range(world, served, rng):
    body = served({"systemId": world["sel"], "range": rng}).json()
    assert body["unit"] == "Wh" and body["end"] - body["start"] == {"1H": 3600, "6H": 21600, "24H": 86400,
                                                                    "7D": 604800, "30D": 2592000}[rng]
    f = _flows(body)
    ts, prof = world["ts"], world["prof"]
    inside = ts > body["start"]
    # expected: the same split per reading interval, trapezoid energies
    hours = np.diff(ts) / 3600
    mid = {k: (v[:-1] + v[1:]) / 2 * hours * 1000 for k, v in prof.items()}  # Wh
    keep = inside[1:] & inside[:-1]
    exp = ef.energy_flows_wh(mid["solar_w"][keep], mid["load_w"][keep], -mid["charge"][keep],
                             mid["grid_w"][keep]).flows
    # one interval at the window's start may be cut; a bucket nets the minutes it holds
    bucket_s = 60 if rng in ("1H", "6H") else 300
    partial_wh = 1.0 * bucket_s / 3600 * 1000 * 4 + 1
    for k in ef.FLOWS:
        assert f[k] == pytest.approx(exp[k], abs=partial_wh), k
    # conservation at the load: what reaches it is the load's energy
    load_wh = sum(v for (a, b), v in f.items() if b == "load")
    assert load_wh == pytest.approx(float(mid["load_w"][keep].sum()), abs=partial_wh)
    if rng != "1H":
        assert f[("solar", "battery")] > 0 and f[("battery", "load")] > 0  # both halves of the day


def test_a_composite_adds_its_members_flows(world, served):
    one = _flows(served({"systemId": world["sel"], "range": "6H"}).json())
    both = served({"composite": "both", "range": "6H"}).json()
    assert both["systemIds"] == [world["sel"], world["fro"]] and both["compositeId"] is not None
    for k, v in _flows(both).items():
        assert v == pytest.approx(2 * one[k], abs=0.01)
    by_id = served({"composite": str(both["compositeId"]), "range": "6H"}).json()
    assert _flows(by_id) == _flows(both)
    now = _flows(served({"composite": "both"}).json())
    assert now[("battery", "load")] == pytest.approx(1000)


def test_flows_check_access_and_input(world, served):
    sel, foreign = world["sel"], world["foreign"]
    assert served({"systemId": sel}, None).status_code == 401
    assert {w: served({"systemId": sel}, w).status_code for w in ("alice", "bob", "root", "carol")} == {
        "alice": 200, "bob": 200, "root": 200, "carol": 404}
    assert served({"systemId": foreign}, "alice").json()["code"] == "not_found"
    assert served({"systemId": 99999}, "root").status_code == 404
    # a composite with a member the caller may not read is not revealed
    assert served({"composite": "mixed"}, "alice").status_code == 404
    assert served({"composite": "mixed"}, "root").status_code == 200
    assert served({"composite": "both"}, "bob").status_code == 404  # bob sees only one member
    assert served({"composite": "nope"}, "alice").status_code == 404
    for bad in ({"systemId": sel, "range": "2H"}, {}, {"systemId": sel, "composite": "both"},
                {"systemId": "x"}, {"systemId": 0}):
        r = served(bad, "alice")
        assert r.status_code == 400, bad


def test_bucket_energies_cut_an_entry_at_the_window_start(world):
    ctx, sel = world["ctx"], world["sel"]
    with ctx.dbs.main_reader.connect() as conn:
        sid = registry.point(conn, sel, "load_w")["id"]
    t0 = int(world["ts"][10])
    rows = flow_queries.bucket_energies_milli_wh(ctx.dbs.telemetry, [sid], t0 - 30, t0 + 120, 60)
    # 1 kW: 30 s (the cut entry) + 60 s + 60 s
    got = sorted(rows)
    assert [b for _, b, _ in got] == [0, 1, 2]
    assert [v for _, _, v in got] == pytest.approx([1e6 * 30 / 3600, 1e6 * 60 / 3600, 1e6 * 60 / 3600], abs=1)
    assert math.isclose(sum(v for *_, v in got), 1e6 * 150 / 3600, rel_tol=1e-3)


def test_whole_days_come_from_the_cache_until_their_readings_change(world, served):
    ctx, sel = world["ctx"], world["sel"]
    with ctx.dbs.main_reader.connect() as conn:
        series = {p["key"]: p["id"] for p in systems_repo.system_points(conn, sel)}
    first = int(world["ts"][0])
    ts = np.arange(first - 3 * 86400, first, 300, dtype=np.int64)
    hour = (ts % 86400) / 3600
    solar = np.clip(4 * np.sin(np.pi * (hour - 6) / 12), 0, None)
    load = np.full(len(ts), 0.9)
    charge = np.clip(solar - load, -0.7, 2.0)
    cols = [(series["solar_w"], solar), (series["load_w"], load), (series["battery_w"], -charge),
            (series["grid_w"], load + charge - solar)]
    ctx.pipeline.ingest(ReadingBatch(np.concatenate([np.full(len(ts), s) for s, _ in cols]), np.tile(ts, 4),
                                     np.concatenate([v for _, v in cols]), np.full(4 * len(ts), -1), [], "test"))
    one = _flows(served({"systemId": sel, "range": "7D"}).json())
    cache = world["app"].state.flow_day_cache
    assert len(cache._days) >= 2  # two or three whole local days kept
    assert _flows(served({"systemId": sel, "range": "7D"}).json()) == one
    # the same window read in one piece: the days add up to it
    body = served({"systemId": sel, "range": "7D"}).json()
    from wattline.api.routes.energy_flow import _window_split

    class R:  # the request the helper needs: the app's context
        app = world["app"]
    whole = _window_split(R, {k: series[k] for k in ("solar_w", "load_w", "battery_w", "grid_w")},
                          body["start"], body["end"], 300, ef.DISCHARGING).flows
    for k in ef.FLOWS:
        assert one[k] == pytest.approx(whole[k], rel=1e-2, abs=5), k  # buckets aligned per day: nets differ
    # a late reading inside a cached day: that day is split again
    # (a balanced one: the extra load comes from the grid, whatever the hour; an unbalanced
    # spike at night would only show as imbalance, the flows capped by the supply)
    mid = len(ts) // 2
    late = int(ts[mid]) + 150
    extra = 25.0 - load[mid]
    grid_then = float((load + charge - solar)[mid])
    ctx.pipeline.ingest(ReadingBatch([series["load_w"], series["grid_w"]], [late, late],
                                     [25.0, grid_then + extra], [-1, -1], [], "late"))
    after = _flows(served({"systemId": sel, "range": "7D"}).json())
    assert sum(v for (a, b), v in after.items() if b == "load") > sum(v for (a, b), v in one.items() if b == "load")
    world["app"].state.flow_day_cache = None  # a cold process agrees
    assert _flows(served({"systemId": sel, "range": "7D"}).json()) == after

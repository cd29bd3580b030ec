"""The switch-state rule of metered devices (issue 10, item 4), through the real ingest
path on SQLite and PostgreSQL: the state reported with a reading holds until the next
one; each ledger entry carries its on-time; power-integrated energy counts only while
on; metered energy while off is kept and flagged; and all of it is the same whatever
order the messages arrive in, for the entries, the day buckets and the on-read
5-minute buckets."""

from __future__ import annotations

import random
from datetime import date

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from world import make_ctx
from wattline import provisioning
from wattline.domain import timeutil
from wattline.domain.ledger import apply_switch, states_at
from wattline.domain.quality import Flag, Method
from wattline.jobs.device_telemetry import ingest_documents
from wattline.store import device_registry, queries

TZ = "Asia/Kolkata"
DAY = date(2025, 11, 5)
STEP = 300


def doc(ts: int, dev: str, on: bool, *, power: float, wh: float | None = None, seq: int = 0) -> dict:
    d = {"esp32_name": "ESP01", "classroom": "CR-101", "device_id": dev, "timestamp": timeutil.iso(ts),
         "power_w": power, "switch_state": {"sw1": on, "sw2": on}, "uptime_seconds": seq * STEP,
         "status": "online", "sequence_no": seq, "firmware_ver": "v2.0.0", "wifi_rssi": -45}
    if wh is not None:
        d["energy_wh_total"] = wh
    return d


@pytest.fixture
def campus(dbs, tmp_path):
    ctx = make_ctx(dbs, tmp_path)
    with dbs.main.begin() as conn:
        provisioning.add_classroom(conn, "CR-101", TZ)
        provisioning.add_device(conn, "ESP01", "light_1", "CR-101", switch="sw1")
        provisioning.add_device(conn, "ESP01", "fan_1", "CR-101", switch="sw2", method="power")
    return ctx


def series(ctx, dev: str) -> dict[str, int]:
    with ctx.dbs.main.connect() as conn:
        return device_registry.device(conn, 1, "ESP01", dev)["series"]


def ledger(ctx, sid: int) -> list[tuple]:
    with ctx.dbs.telemetry.connect() as c:
        return [tuple(r) for r in c.exec_driver_sql(
            "SELECT start_ts, end_ts, delta_milli_wh, flags, on_time_s FROM ledger "
            f"WHERE series_id = {int(sid)} ORDER BY end_ts")]


def day_bucket(ctx, sid: int) -> queries.EnergyBucket:
    start, end = timeutil.day_bounds(DAY, TZ)
    (b,) = queries.energy_buckets(ctx.dbs.telemetry, sid, "day", start, end, TZ)
    return b


def ingest(ctx, docs, now) -> None:
    result, errors = ingest_documents(ctx.pipeline, ctx.dbs.main_reader, 1, docs, source="test", now=now)
    assert not errors and result.quarantined == 0


# on, on, off, off, on, on: the fan reports 60 W while on, 0 W while off
STATES = [True, True, False, False, True, True]


def test_power_counts_only_while_on_with_the_reported_power_held(campus):
    start, _ = timeutil.day_bounds(DAY, TZ)
    t = [start + 3600 + k * STEP for k in range(len(STATES))]
    docs = [doc(t[k], "fan_1", on, power=60.0 if on else 0.0, seq=k) for k, on in enumerate(STATES)]
    ingest(campus, docs, t[-1] + 60)
    sid = series(campus, "fan_1")["power"]
    rows = ledger(campus, sid)
    # (start, end] takes the state and the power reported at its start: 60 W x 300 s = 5 Wh
    assert [(r[2], r[4]) for r in rows] == [(5000, 300), (5000, 300), (0, 0), (0, 0), (5000, 300)]
    assert all(r[3] & Flag.LOW_CONFIDENCE for r in rows)  # integrated, not metered
    day = day_bucket(campus, sid)
    assert (day.energy_milli_wh, day.on_time_s, day.hc_energy_milli_wh) == (15_000, 900, 0)
    assert day.estimated_milli_wh == 15_000


def test_metered_energy_while_off_is_kept_and_flagged(campus):
    start, _ = timeutil.day_bounds(DAY, TZ)
    t = [start + 3600 + k * STEP for k in range(len(STATES))]
    # the counter also advances during the first off interval (a miswired switch)
    wh = [100.0, 105.0, 110.0, 112.0, 112.0, 117.0]
    docs = [doc(t[k], "light_1", on, power=60.0, wh=wh[k], seq=k) for k, on in enumerate(STATES)]
    ingest(campus, docs, t[-1] + 60)
    sid = series(campus, "light_1")["energy_total"]
    rows = ledger(campus, sid)
    assert [r[2] for r in rows] == [5000, 5000, 2000, 0, 5000]  # as metered, also while off
    assert [bool(r[3] & Flag.SWITCHED_OFF) for r in rows] == [False, False, True, False, False]
    assert [r[4] for r in rows] == [300, 300, 0, 0, 300]
    day = day_bucket(campus, sid)
    assert (day.energy_milli_wh, day.on_time_s) == (17_000, 900)
    assert day.hc_energy_milli_wh == 17_000  # metered, no gap: high confidence
    assert day.flags & Flag.SWITCHED_OFF


def test_a_device_without_a_switch_state_has_no_on_time(campus):
    start, _ = timeutil.day_bounds(DAY, TZ)
    docs = [doc(start + k * STEP, "light_1", True, power=60.0, wh=10.0 + k, seq=k) for k in range(3)]
    for d in docs:
        d.pop("switch_state")
    ingest(campus, docs, start + 3600)
    sid = series(campus, "light_1")["energy_total"]
    assert [r[4] for r in ledger(campus, sid)] == [None, None]
    assert day_bucket(campus, sid).on_time_s is None


@pytest.mark.parametrize("seed", [1, 2])
def test_the_rule_does_not_depend_on_arrival_order(campus, tmp_path, dbs, request, seed):
    """The same fleet day ingested in order in one batch, and shuffled in small batches
    (late messages re-derive their neighbours): identical ledger, day and 5-minute
    buckets, for a counter device and a power device."""
    start, _ = timeutil.day_bounds(DAY, TZ)
    rng = random.Random(seed)
    docs, wh = [], 50.0
    state = True
    for k in range(48):
        if rng.random() < 0.3:
            state = not state
        wh += rng.choice([0.0, 1.0, 2.5]) if state else rng.choice([0.0, 0.0, 0.5])
        ts = start + 7200 + k * STEP + rng.randint(-20, 20)
        docs.append(doc(ts, "light_1", state, power=60.0 if state else 0.0, wh=round(wh, 3), seq=k))
        docs.append(doc(ts + 7, "fan_1", state, power=rng.choice([40.0, 55.0]) if state else 0.0, seq=k))
    now = start + 86400

    ingest(campus, docs, now)
    expected = {dev: _snapshot(campus, dev) for dev in ("light_1", "fan_1")}

    shuffled_ctx = make_ctx(_fresh_pair(request, dbs, tmp_path), tmp_path / "b")
    with shuffled_ctx.dbs.main.begin() as conn:
        provisioning.add_classroom(conn, "CR-101", TZ)
        provisioning.add_device(conn, "ESP01", "light_1", "CR-101", switch="sw1")
        provisioning.add_device(conn, "ESP01", "fan_1", "CR-101", switch="sw2", method="power")
    order = docs[:]
    rng.shuffle(order)
    for a in range(0, len(order), 7):
        ingest(shuffled_ctx, order[a:a + 7], now)
    for dev in ("light_1", "fan_1"):
        assert _snapshot(shuffled_ctx, dev) == expected[dev]
    on = expected["fan_1"]["day"][1]
    assert 0 < on < 48 * STEP  # the day had both on and off spells


def _fresh_pair(request, dbs, tmp_path):
    """A second fresh database pair on the same backend as ``dbs``."""
    from conftest import make_pg, make_sqlite

    if dbs.telemetry.dialect.name == "sqlite":
        (tmp_path / "b").mkdir()
        pair = make_sqlite(tmp_path / "b")
    else:
        pair = make_pg(request.getfixturevalue("pg_templates"))
    request.addfinalizer(pair.dispose)
    return pair


def _snapshot(ctx, dev: str) -> dict:
    s = series(ctx, dev)
    sid = s.get("energy_total", s["power"])
    start, end = timeutil.day_bounds(DAY, TZ)
    fine = queries.energy_buckets(ctx.dbs.telemetry, sid, "5min", start, end, TZ)
    day = day_bucket(ctx, sid)
    assert sum(b.energy_milli_wh for b in fine) == day.energy_milli_wh
    assert sum(b.on_time_s or 0 for b in fine) == day.on_time_s
    assert sum(b.hc_energy_milli_wh for b in fine) == day.hc_energy_milli_wh
    return {"ledger": ledger(ctx, sid), "day": (day.energy_milli_wh, day.on_time_s, day.hc_energy_milli_wh,
                                                int(day.flags))}


# ------------------------------------------------------------------ the pure rule


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3600), st.integers(0, 10**7), st.sampled_from([0.0, 1.0, np.nan]),
                          st.floats(0, 5), st.sampled_from([Method.COUNTER, Method.POWER_INTEGRATION])),
                min_size=1, max_size=30))
def test_apply_switch_invariants(entries):
    span = np.array([e[0] for e in entries], np.int64)
    start = np.cumsum(np.r_[0, span[:-1]]).astype(np.int64)
    delta = np.array([e[1] for e in entries], np.int64)
    state = np.array([e[2] for e in entries])
    kw = np.array([e[3] for e in entries])
    method = np.array([int(e[4]) for e in entries], np.int64)
    out = apply_switch(start, start + span, delta, np.zeros(len(span), np.int64), method, kw, state)
    on, off, unknown = state == 1.0, state == 0.0, np.isnan(state)
    assert (out.on_time[on] == span[on]).all() and (out.on_time[off] == 0).all()
    assert (out.on_time[unknown] == -1).all()
    counter = method == int(Method.COUNTER)
    assert (out.delta[counter] == delta[counter]).all()  # metered energy is never changed
    assert ((out.flags & Flag.SWITCHED_OFF) > 0).tolist() == (counter & off & (delta > 0)).tolist()
    power = ~counter
    assert (out.delta[power & off] == 0).all()
    assert (out.delta[power & unknown] == delta[power & unknown]).all()
    held = np.rint(kw * span / 3600.0 * 1e6).astype(np.int64)
    assert (out.delta[power & on] == held[power & on]).all()


def test_states_at_takes_the_latest_report_at_or_before():
    got = states_at(np.array([5, 10, 11, 30, 40]), np.array([10, 30]), np.array([1.0, 0.0]))
    assert np.isnan(got[0]) and got[1:].tolist() == [1.0, 1.0, 0.0, 0.0]


def test_clock_drift_and_out_of_order_messages_are_counted(campus):
    start, _ = timeutil.day_bounds(DAY, TZ)
    now = start + 7200
    first = [doc(start + 3600 + k * STEP, "light_1", True, power=60.0, wh=10.0 + k, seq=k) for k in range(4)]
    result, _ = ingest_documents(campus.pipeline, campus.dbs.main_reader, 1, first[2:], source="test", now=now)
    assert (result.clock_drift, result.out_of_order) == (0, 0)
    late, _ = ingest_documents(campus.pipeline, campus.dbs.main_reader, 1, first[:2], source="test", now=now)
    assert late.out_of_order == 2 and late.accepted == 2
    ahead = doc(now + 600, "light_1", True, power=60.0, wh=20.0, seq=9)  # 10 min ahead: drift, not quarantine
    drift, _ = ingest_documents(campus.pipeline, campus.dbs.main_reader, 1, [ahead], source="test", now=now)
    assert drift.clock_drift == 1 and drift.accepted == 1

"""The campus analytics API end to end: fleet documents ingested through the real path
(``jobs.device_telemetry.ingest_documents``), a cost version taking effect mid-day,
then every endpoint (summary, timeline, device breakdown, monthly, CSV export) over
real HTTP (uvicorn on loopback), on SQLite and PostgreSQL; each figure is compared, as
integers (milli-Wh, micro-units), with a computation from the payloads themselves.
Bad parameters are 400 ``invalid_parameter``, an unknown classroom 404.

The "cards = charts" property (hypothesis): for random classrooms (zones with DST),
days, devices, readings and cost versions, summary = sum of device breakdown = sum of
timeline buckets of 5, 15, 60 and 1440 minutes = the monthly answer's day, exactly.
"""

from __future__ import annotations

import csv
import io
import itertools
import random
from dataclasses import dataclass
from datetime import date, timedelta

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helpers import make_sqlite
from test_api import Server
from world import make_ctx
from wattline import provisioning
from wattline.api.app import create_app
from wattline.context import AppContext
from wattline.domain import timeutil
from wattline.jobs.device_telemetry import ingest_documents
from wattline.security import tokens
from wattline.store import cost_versions_repo as repo
from wattline.store import device_registry, registry
from wattline.store.cost_versions_repo import ScopeRef

TZ = "Asia/Kolkata"
DAY = date(2025, 11, 5)
D0, D1 = timeutil.day_bounds(DAY, TZ)
CHANGE = D0 + 14 * 3600 + 150  # 14:02:30 IST: the classroom's new rate, inside an entry
R7, R75 = 7_000_000, 7_500_000  # micro-units per kWh
STEP = 300
NOW = D1 + 7 * 86400  # the arrival time handed to the ingest (no real clock)
API = "/api/power-analytics"


def doc(ts: int, esp: str, dev: str, *, wh: float | None = None, power: float = 0.0, on: bool = True,
        seq: int = 0, classroom: str = "CR-101") -> dict:
    """A seed-002 telemetry document at ``ts`` (UTC epoch s)."""
    d = {"esp32_name": esp, "classroom": classroom, "device_id": dev, "timestamp": timeutil.iso(ts),
         "power_w": power, "switch_state": {"sw1": on}, "uptime_seconds": 1000 + seq * STEP,
         "status": "online", "sequence_no": seq, "firmware_ver": "v2.0.0", "wifi_rssi": -50}
    if wh is not None:
        d["energy_wh_total"] = wh
    return d


def price(milli_wh: int, rate: int) -> int:
    """The hand rule: milli-Wh x micro-units per kWh / 10**6, rounded half up."""
    return (2 * milli_wh * rate + 10**6) // (2 * 10**6)


def share(total: int, span: tuple[int, int], part: tuple[int, int]) -> int:
    """The telescoping share of ``total`` over ``span`` falling in ``part`` (by time)."""
    a, b = span
    lo, hi = max(a, part[0]), min(b, part[1])
    if hi <= lo:
        return 0
    return int(np.rint(total * ((hi - a) / (b - a))) - np.rint(total * ((lo - a) / (b - a))))


def micro(x: float | None) -> int | None:
    """A JSON kWh / currency figure back to its integer (milli-Wh / micro-units)."""
    return None if x is None else round(x * 1_000_000)


# ------------------------------------------------------------------ the campus


@dataclass
class Campus:
    url: str
    token: str
    ctx: AppContext
    org: int

    def get(self, path: str, token: str | None = "", **params) -> httpx.Response:
        tok = self.token if token == "" else token
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        return httpx.get(self.url + API + path, params=params, headers=headers, timeout=60)

    def ok(self, path: str, **params) -> dict:
        r = self.get(path, **params)
        assert r.status_code == 200, r.text
        return r.json()

    def ingest(self, docs: list[dict]) -> None:
        result, errors = ingest_documents(self.ctx.pipeline, self.ctx.dbs.main_reader, self.org, docs,
                                          source="http", now=NOW)
        assert not errors and not result.unknown_device and not result.quarantined


def _entries(docs: list[dict]) -> list[tuple[int, int, int]]:
    """Counter entries (start, end, delta milli-Wh) from the payloads' energy_wh_total."""
    pts = sorted((timeutil.parse_instant(d["timestamp"]), round(d["energy_wh_total"] * 1000)) for d in docs)
    return [(a, b, m1 - m0) for (a, m0), (b, m1) in zip(pts, pts[1:])]


def _power_entries(docs: list[dict]) -> list[tuple[int, int, int]]:
    """Power entries: the power reported at the start held while the switch reported
    there is on, P (W) x dt (s) / 3.6 milli-Wh; 0 while off."""
    pts = sorted((timeutil.parse_instant(d["timestamp"]), d["power_w"], d["switch_state"]["sw1"]) for d in docs)
    return [(a, b, round(p * (b - a) / 3.6) if on else 0) for (a, p, on), (b, _p, _on) in zip(pts, pts[1:])]


def _on_entries(docs: list[dict]) -> list[tuple[int, int, int]]:
    """Switch-on seconds of each entry (start, end, seconds): the state at its start holds."""
    pts = sorted((timeutil.parse_instant(d["timestamp"]), d["switch_state"]["sw1"]) for d in docs)
    return [(a, b, (b - a) if on else 0) for (a, on), (b, _on) in zip(pts, pts[1:])]


def _off(ts: int) -> bool:
    """The fleet's switches are off from 12:00 to 13:30 IST on the day (lunch)."""
    return D0 + 12 * 3600 <= ts < D0 + 13 * 3600 + 1800


def _fleet(seed: int = 5) -> dict[tuple[str, str], list[dict]]:
    """Documents of three devices of CR-101 over 2025-11-04 20:00 to 11-06 02:00 IST every
    5 minutes (odd counter steps, so rounding matters), and one of CR-102."""
    rng = random.Random(seed)
    start, end = D0 - 4 * 3600, D1 + 2 * 3600
    out: dict[tuple[str, str], list[dict]] = {}
    for esp, dev, room in (("ESP01", "light_1", "CR-101"), ("ESP02", "light_2", "CR-101"),
                           ("ESP09", "light_9", "CR-102")):
        wh, docs = 1000.0 + rng.randint(0, 500), []
        for k, ts in enumerate(range(start, end + 1, STEP)):
            docs.append(doc(ts, esp, dev, wh=wh, power=0.0, seq=k, classroom=room, on=not _off(ts)))
            wh = round(wh + (0 if _off(ts) else rng.randint(1, 3000)) / 1000, 3)  # 0.001-3 Wh per step
        out[(esp, dev)] = docs
    out[("ESP01", "fan_1")] = [doc(ts, "ESP01", "fan_1", power=60.0, seq=k, on=not _off(ts))
                               for k, ts in enumerate(range(start, end + 1, STEP))]
    return out


@pytest.fixture
def campus(dbs, tmp_path):
    ctx = make_ctx(dbs, tmp_path)
    with dbs.main.begin() as conn:
        provisioning.add_classroom(conn, "CR-101", TZ)
        provisioning.add_classroom(conn, "CR-102", TZ)
        provisioning.add_device(conn, "ESP01", "light_1", "CR-101", switch="sw1")
        provisioning.add_device(conn, "ESP02", "light_2", "CR-101", switch="sw1")
        provisioning.add_device(conn, "ESP01", "fan_1", "CR-101", switch="sw1", method="power")
        provisioning.add_device(conn, "ESP09", "light_9", "CR-102", switch="sw1")
        org = device_registry.organization_id(conn, registry.DEFAULT_ORG)
        token = tokens.create_token(conn, "viewer token", "viewer")
    with Server(create_app(ctx)) as server:
        yield Campus(server.url, token, ctx, org)


def _add_versions(dbs) -> None:
    with dbs.main.begin() as conn:
        repo.add(conn, rate_micro_per_kwh=R7, effective_from=D0 - 30 * 86400, currency="INR")
        room = repo.resolve_scope(conn, group="CR-101", group_kind="classroom")
        repo.add(conn, rate_micro_per_kwh=R75, effective_from=CHANGE, ref=room, currency="INR")


def _rate(ts: int) -> int:
    return R75 if ts >= CHANGE else R7


def _hand_cost(entries, lo: int, hi: int) -> int:
    """Hand cost of [lo, hi): each entry split at CHANGE by time and priced at its side's
    rate, each priced stretch shared over [lo, hi) by time."""
    total = 0
    for a, b, d in entries:
        if a < CHANGE < b:
            first = share(d, (a, b), (a, CHANGE))
            stretches = [(a, CHANGE, price(first, R7)), (CHANGE, b, price(d - first, R75))]
        else:
            stretches = [(a, b, price(d, _rate(a)))]
        total += sum(share(c, (s, e), (lo, hi)) for s, e, c in stretches)
    return total


def _hand_energy(entries, lo: int, hi: int) -> int:
    return sum(share(d, (a, b), (lo, hi)) for a, b, d in entries)


def test_every_endpoint_matches_the_payloads(campus):
    fleet = _fleet()
    campus.ingest([d for docs in fleet.values() for d in docs])
    _add_versions(campus.ctx.dbs)  # after the data: priced on read, so the new rate applies at once
    hand = {key: (_power_entries(docs) if key[1] == "fan_1" else _entries(docs)) for key, docs in fleet.items()}
    mine = [k for k in hand if k[0] != "ESP09"]
    energy = {k: _hand_energy(hand[k], D0, D1) for k in mine}
    cost = {k: _hand_cost(hand[k], D0, D1) for k in mine}
    on_time = {k: _hand_energy(_on_entries(fleet[k]), D0, D1) for k in mine}
    assert energy[("ESP01", "fan_1")] == 22.5 * 3600 * 60 / 3.6  # 60 W all day but lunch = 1.35 kWh
    assert set(on_time.values()) == {86400 - 5400}

    s = campus.ok("/summary", classroom="CR-101", date=DAY.isoformat())
    assert (s["classroom"], s["date"], s["timezone"], s["currency"], s["devices"]) == (
        "CR-101", "2025-11-05", TZ, "INR", 3)
    assert s["energy_milli_wh"] == micro(s["energy_kwh"]) == sum(energy.values())
    assert s["cost_micro"] == micro(s["cost"]) == sum(cost.values())
    assert s["on_time_sec"] == sum(on_time.values())
    # the fan's energy is integrated from power (low confidence), the lights' metered
    fan = energy[("ESP01", "fan_1")]
    assert s["quality"]["estimated_milli_wh"] == micro(s["quality"]["estimated_kwh"]) == fan
    assert s["quality"]["high_confidence_pct"] == round(100 * (s["energy_milli_wh"] - fan) / s["energy_milli_wh"], 2)
    assert s["quality"]["estimated"] is (s["quality"]["high_confidence_pct"] < 90)

    b = campus.ok("/device-breakdown", classroom="CR-101", date=DAY.isoformat())
    got = {(d["esp32_name"], d["device_id"]): d for d in b["devices"]}
    assert sorted(got) == sorted(mine) and b["currency"] == "INR" and b["timezone"] == TZ
    for k in mine:
        assert (got[k]["energy_milli_wh"], got[k]["cost_micro"]) == (energy[k], cost[k]), k
        assert micro(got[k]["energy_kwh"]) == energy[k] and micro(got[k]["cost"]) == cost[k]
        assert got[k]["on_time_sec"] == on_time[k]
        assert got[k]["quality"]["high_confidence_pct"] == (0.0 if k[1] == "fan_1" else 100.0)
        assert got[k]["quality"]["estimated"] is (k[1] == "fan_1")
    assert sum(d["on_time_sec"] for d in b["devices"]) == s["on_time_sec"]

    for minutes in (5, 15, 60, 1440):
        t = campus.ok("/timeline", classroom="CR-101", start=DAY.isoformat(), end=DAY.isoformat(), bucket=minutes)
        assert len(t["buckets"]) == 1440 // minutes and t["bucket_minutes"] == minutes
        assert t["buckets"][0]["start"] == "2025-11-05T00:00:00+05:30"
        assert t["buckets"][-1]["end"] == "2025-11-06T00:00:00+05:30"
        assert sum(x["energy_milli_wh"] for x in t["buckets"]) == t["energy_milli_wh"] == s["energy_milli_wh"]
        assert sum(x["cost_micro"] for x in t["buckets"]) == t["cost_micro"] == s["cost_micro"]
        assert t["on_time_sec"] == s["on_time_sec"]
        for x in t["buckets"][::7]:  # every bucket against the hand computation, sampled
            lo, hi = timeutil.parse_instant(x["start"]), timeutil.parse_instant(x["end"])
            assert x["energy_milli_wh"] == sum(_hand_energy(hand[k], lo, hi) for k in mine), x
            assert x["cost_micro"] == sum(_hand_cost(hand[k], lo, hi) for k in mine), x
            assert x["on_time_sec"] == sum(_hand_energy(_on_entries(fleet[k]), lo, hi) for k in mine), x
    # the hour of the change: before it 7.00, after it 7.50, the entry across it split
    h = campus.ok("/timeline", classroom="CR-101", start="2025-11-05T14:00", end="2025-11-05T15:00", bucket=5)
    assert [x["start"][11:16] for x in h["buckets"]][:2] == ["14:00", "14:05"] and len(h["buckets"]) == 12
    first = h["buckets"][0]
    assert first["cost_micro"] == sum(_hand_cost(hand[k], CHANGE - 150, CHANGE + 150) for k in mine)

    m = campus.ok("/monthly", classroom="CR-101", year=2025, month=11)
    assert len(m["days"]) == 30 and m["timezone"] == TZ
    (day,) = [d for d in m["days"] if d["date"] == "2025-11-05"]
    assert (day["energy_milli_wh"], day["cost_micro"], day["on_time_sec"]) == (
        s["energy_milli_wh"], s["cost_micro"], s["on_time_sec"])
    assert m["energy_milli_wh"] == sum(d["energy_milli_wh"] for d in m["days"]) == sum(
        _hand_energy(hand[k], *timeutil.month_bounds(2025, 11, TZ)) for k in mine)
    assert m["cost_micro"] == sum(d["cost_micro"] or 0 for d in m["days"])
    assert m["cost_micro"] == sum(_hand_cost(hand[k], *timeutil.month_bounds(2025, 11, TZ)) for k in mine)

    r = campus.get("/export-csv", classroom="CR-101", start="2025-11-04", end="2025-11-06")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 3 * 3  # one row per device per local day, also for days with little data
    assert list(rows[0]) == ["date", "classroom", "esp32_name", "device_id", "energy_kwh", "cost", "currency",
                             "on_time_sec", "high_confidence_pct", "estimated_kwh"]
    for row in rows:
        k = (row["esp32_name"], row["device_id"])
        lo, hi = timeutil.day_bounds(date.fromisoformat(row["date"]), TZ)
        assert micro(float(row["energy_kwh"])) == _hand_energy(hand[k], lo, hi), row
        assert micro(float(row["cost"])) == _hand_cost(hand[k], lo, hi), row
        assert int(row["on_time_sec"]) == _hand_energy(_on_entries(fleet[k]), lo, hi), row
        assert row["currency"] == "INR" and row["classroom"] == "CR-101"
    day_rows = [row for row in rows if row["date"] == "2025-11-05"]
    assert {(x["esp32_name"], x["device_id"]): micro(float(x["cost"])) for x in day_rows} == cost
    assert sum(int(x["on_time_sec"]) for x in day_rows) == s["on_time_sec"]

    # the other classroom has its own numbers, at the global rate only
    o = campus.ok("/summary", classroom="CR-102", date=DAY.isoformat())
    light9 = hand[("ESP09", "light_9")]
    assert o["energy_milli_wh"] == _hand_energy(light9, D0, D1)
    assert o["cost_micro"] == sum(share(price(d, R7), (a, b), (D0, D1)) for a, b, d in light9)


def test_a_cost_version_reprices_only_what_follows_it(campus):
    fleet = _fleet(seed=9)
    campus.ingest([d for key, docs in fleet.items() if key[0] != "ESP09" for d in docs])
    with campus.ctx.dbs.main.begin() as conn:
        repo.add(conn, rate_micro_per_kwh=R7, effective_from=D0 - 86400, currency="INR")
    before = campus.ok("/timeline", classroom="CR-101", start=DAY.isoformat(), end=DAY.isoformat(), bucket=60)
    with campus.ctx.dbs.main.begin() as conn:
        room = repo.resolve_scope(conn, group="CR-101", group_kind="classroom")
        repo.add(conn, rate_micro_per_kwh=R75, effective_from=CHANGE, ref=room, currency="INR")
    after = campus.ok("/timeline", classroom="CR-101", start=DAY.isoformat(), end=DAY.isoformat(), bucket=60)
    for x, y in zip(before["buckets"], after["buckets"]):
        assert x["energy_milli_wh"] == y["energy_milli_wh"]
        hour = int(x["start"][11:13])
        if hour < 14:
            assert x["cost_micro"] == y["cost_micro"]  # untouched
        elif hour > 14:  # wholly after the change: 7.50 instead of 7.00, entry by entry
            assert y["cost_micro"] > x["cost_micro"]
    assert after["cost_micro"] > before["cost_micro"]
    s = campus.ok("/summary", classroom="CR-101", date=DAY.isoformat())
    assert s["cost_micro"] == after["cost_micro"]


def test_no_data_and_no_cost_version(campus):
    s = campus.ok("/summary", classroom="CR-101", date="2024-01-01")
    assert (s["energy_milli_wh"], s["cost"], s["cost_micro"], s["on_time_sec"], s["devices"]) == (0, None, None, 0, 3)
    assert s["quality"] == {"high_confidence_pct": None, "estimated_kwh": 0.0, "estimated_milli_wh": 0,
                            "estimated": False, "flags": []}
    listed = campus.ok("/classrooms")["classrooms"]
    assert [(c["name"], c["timezone"], c["devices"]) for c in listed] == [("CR-101", TZ, 3), ("CR-102", TZ, 1)]


@pytest.mark.parametrize("path, params, parameter", [
    ("/summary", {"classroom": "CR-101", "date": "2025-13-01"}, "date"),
    ("/summary", {"classroom": "CR-101"}, "date"),
    ("/summary", {"classroom": "CR-101", "date": "1900-01-01"}, "date"),
    ("/timeline", {"classroom": "CR-101", "start": "2025-11-05", "end": "2025-11-05", "bucket": 30}, "bucket"),
    ("/timeline", {"classroom": "CR-101", "start": "yesterday", "end": "2025-11-05"}, "start"),
    ("/timeline", {"classroom": "CR-101", "start": "2025-11-06", "end": "2025-11-05"}, "end"),
    ("/timeline", {"classroom": "CR-101", "start": "2025-01-01", "end": "2025-12-31", "bucket": 5}, "end"),
    ("/timeline", {"classroom": "CR-101", "start": "2025-01-01", "end": "2025-01-08", "bucket": 5}, "end"),
    ("/device-breakdown", {"classroom": "", "date": "2025-11-05"}, "classroom"),
    ("/monthly", {"classroom": "CR-101", "year": 2025, "month": 13}, "month"),
    ("/monthly", {"classroom": "CR-101", "year": "x", "month": 1}, "year"),
    ("/export-csv", {"classroom": "CR-101", "start": "2025-11-06", "end": "2025-11-05"}, "end"),
    ("/export-csv", {"classroom": "CR-101", "start": "2024-01-01", "end": "2025-11-05"}, "end"),
])
def test_bad_parameters_are_400(campus, path, params, parameter):
    r = campus.get(path, **params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "invalid_parameter" and body["details"]["parameter"] == parameter, body
    assert body["error"]


def test_unknown_classroom_is_404_and_a_token_is_required(campus):
    for path, params in (("/summary", {"date": "2025-11-05"}), ("/device-breakdown", {"date": "2025-11-05"}),
                         ("/timeline", {"start": "2025-11-05", "end": "2025-11-05"}),
                         ("/monthly", {"year": 2025, "month": 11}),
                         ("/export-csv", {"start": "2025-11-05", "end": "2025-11-05"})):
        r = campus.get(path, classroom="CR-999", **params)
        assert r.status_code == 404 and r.json()["code"] == "not_found", (path, r.text)
        assert r.json()["details"] == {"classroom": "CR-999"}
        assert campus.get(path, token=None, classroom="CR-101", **params).status_code == 401
        assert campus.get(path, token="not-a-token", classroom="CR-101", **params).status_code == 401


# ------------------------------------------------------------------ cards = charts

ZONES = ("Asia/Kolkata", "Europe/Berlin", "America/New_York", "UTC")
# days with a DST change in some of the zones above, and plain ones
DAYS = (date(2025, 10, 26), date(2025, 11, 2), date(2025, 3, 9), date(2025, 3, 30), date(2025, 11, 5),
        date(2025, 1, 31))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One server for every example (each example makes its own classroom)."""

    tmp = tmp_path_factory.mktemp("cards")
    dbs = make_sqlite(tmp)
    ctx = make_ctx(dbs, tmp)
    with dbs.main.begin() as conn:
        org = provisioning.organization_named(conn)
        token = tokens.create_token(conn, "cards", "viewer")
    with Server(create_app(ctx)) as server:
        yield Campus(server.url, token, ctx, org)
    dbs.dispose()


_counter = itertools.count()


@st.composite
def classroom_days(draw):
    """A classroom in a random zone, 1-3 devices (counter or power) with readings and
    switch states at random steps (gaps included) over a random day and its neighbours, and 0-2 cost
    versions of the classroom or of a device at random instants."""
    tz = draw(st.sampled_from(ZONES))
    day = draw(st.sampled_from(DAYS))
    lo, hi = timeutil.day_bounds(day, tz)
    devices = []
    for _ in range(draw(st.integers(1, 3))):
        method = draw(st.sampled_from(["counter", "power"]))
        t = lo - draw(st.integers(0, 4 * 3600))
        end = hi + draw(st.integers(0, 4 * 3600))
        steps = draw(st.lists(st.integers(30, 1500), min_size=2, max_size=200))
        values = draw(st.lists(st.tuples(st.integers(0, 5000), st.booleans()), min_size=len(steps),
                               max_size=len(steps)))
        readings = []
        for step, (v, on) in zip(steps, values):
            if t > end:
                break
            readings.append((t, v, on))
            t += step
        devices.append((method, readings))
    versions = draw(st.lists(st.tuples(st.integers(lo - 86400, hi + 86400), st.integers(0, 20_000_000),
                                       st.integers(-1, 2)), max_size=2))
    return tz, day, devices, versions


@given(case=classroom_days())
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_cards_equal_charts(served, case):
    tz, day, devices, versions = case
    n = next(_counter)
    room = f"PX-{n}"
    docs = []
    with served.ctx.dbs.main.begin() as conn:
        provisioning.add_classroom(conn, room, tz)
        assets = []
        for i, (method, readings) in enumerate(devices):
            esp, dev = f"PX{n}E{i}", f"dev_{i}"
            assets.append(provisioning.add_device(conn, esp, dev, room, switch="sw1", method=method))
            wh = 100.0
            for k, (ts, v, on) in enumerate(readings):
                wh = round(wh + v / 1000, 3)
                docs.append(doc(ts, esp, dev, wh=wh if method == "counter" else None, power=v / 50, seq=k,
                                classroom=room, on=on))
        for eff, rate, target in versions:
            ref = (repo.resolve_scope(conn, group=room, group_kind="classroom") if target < 0
                   else ScopeRef("asset", assets[target % len(assets)]))
            repo.add(conn, rate_micro_per_kwh=rate, effective_from=eff, ref=ref, currency="INR")
    served.ingest(docs)
    d = day.isoformat()
    s = served.ok("/summary", classroom=room, date=d)
    b = served.ok("/device-breakdown", classroom=room, date=d)

    def check(items, what):
        for key in ("energy_milli_wh", "unpriced_milli_wh", "on_time_sec"):
            assert sum(x[key] for x in items) == s[key], (what, key)
        # a cost is shown exactly when some of the energy is priced; it is then the exact sum
        assert sum(x["cost_micro"] or 0 for x in items) == (s["cost_micro"] or 0), what
        if s["cost_micro"] is None:  # no version, or none of the energy priced: so in every part
            assert all(x["cost_micro"] in (None, 0) for x in items), what

    check(b["devices"], "breakdown")
    assert len(b["devices"]) == s["devices"] == len(devices)
    for minutes in (5, 15, 60, 1440):
        t = served.ok("/timeline", classroom=room, start=d, end=d, bucket=minutes)
        check(t["buckets"], f"timeline {minutes}")
        assert (t["energy_milli_wh"], t["cost_micro"]) == (s["energy_milli_wh"], s["cost_micro"])
        assert t["buckets"][0]["start"] == timeutil.iso(timeutil.day_bounds(day, tz)[0], tz)
    m = served.ok("/monthly", classroom=room, year=day.year, month=day.month)
    (md,) = [x for x in m["days"] if x["date"] == d]
    assert (md["energy_milli_wh"], md["cost_micro"], md["on_time_sec"]) == (
        s["energy_milli_wh"], s["cost_micro"], s["on_time_sec"])
    assert m["energy_milli_wh"] == sum(x["energy_milli_wh"] for x in m["days"])
    assert micro(s["energy_kwh"]) == s["energy_milli_wh"] and micro(s["cost"]) == s["cost_micro"]
    nxt = (day + timedelta(days=1)).isoformat()
    both = served.ok("/timeline", classroom=room, start=d, end=nxt, bucket=1440)
    assert [x["energy_milli_wh"] for x in both["buckets"]][0] == s["energy_milli_wh"]

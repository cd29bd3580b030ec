"""GET /api/data/historical over real HTTP: ranges and the level each picks, the
override, several systems, composites equal to their members' roll-up in every bucket,
bad input (400) and foreign systems (404); the daily and cleanup crons and the
database overview."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from sqlalchemy import select, update

from helpers import session_headers
from test_point_aggs import add_system, ingest, series, users
from test_systems import Server
from world import make_ctx
from wattline import clock, system_admin
from wattline.api.app import create_app
from wattline.security.sessions import COOKIE_NAME, issue_session
from wattline.security.users import get_user_principal
from wattline.store.tables import group_members, readings

NOW = 1_700_006_400 + 12 * 3600  # 2023-11-15 12:00 UTC
CRON = "cron-secret-for-tests"


@pytest.fixture
def world(dbs, tmp_path, set_clock):
    set_clock(NOW)
    ctx = make_ctx(dbs, tmp_path)
    ctx.settings.cron_secret = CRON
    users(ctx, ("alice", "user"), ("carol", "user"), ("root", "admin"))
    a = add_system(ctx, "alice", "Home", "1", capacity_kwh=10.0)
    b = add_system(ctx, "alice", "Shed", "2", capacity_kwh=5.0)
    c = add_system(ctx, "carol", "Carol's", "3")
    # every 15 minutes for a week, every 2 minutes over the last 26 hours
    ts = np.concatenate([np.arange(NOW - 8 * 86400, NOW - 26 * 3600, 900), np.arange(NOW - 26 * 3600, NOW + 1, 120)])
    for i, sid in enumerate((a, b, c)):
        s = series(ctx, sid)
        ingest(ctx, s["solar_w"], ts, 1.0 + i + (ts % 11) / 10)  # kW
        ingest(ctx, s["battery_soc"], ts, 20 + 10 * i + (ts % 13))
        ingest(ctx, s["solar_kwh"], ts, 100 * (i + 1) + (ts - ts[0]) / 3600 * (i + 1))
    with ctx.dbs.main.begin() as conn:
        home = system_admin.add_composite(conn, "home", "Home and shed", [b, a])
        for pos, m in enumerate((b, a)):  # member order b, a (main's insert_composite sets no position yet)
            conn.execute(update(group_members).where(group_members.c.group_id == home,
                                                     group_members.c.asset_id == m).values(position=pos))
        system_admin.add_composite(conn, "mixed", "With carol's", [a, c])
        cookies = {n: issue_session(ctx.settings.encryption_key, get_user_principal(conn, n))
                   for n in ("alice", "carol", "root")}
    with Server(create_app(ctx)) as server:
        yield ctx, server, cookies, (a, b, c), len(ts)


def get(server, cookies, who, **params):
    clock.set_now(NOW)  # the clock ticks: each request starts at NOW (same process as the server)
    return httpx.get(server.url + "/api/data/historical", params=params,
                     cookies={COOKIE_NAME: cookies[who]} if who else {}, timeout=30)


def test_ranges_pick_their_level_and_the_override_wins(world):
    ctx, server, cookies, (a, b, c), n = world
    s = series(ctx, a)
    with ctx.dbs.telemetry.connect() as conn:
        raw = dict(conn.execute(select(readings.c.ts, readings.c.value).where(
            readings.c.series_id == s["solar_w"])).all())
    levels = {}
    for rng in ("1H", "6H", "24H", "7D", "30D"):
        r = get(server, cookies, "alice", systemIds=str(a), pointKeys="solar_w,battery_soc", range=rng)
        assert r.status_code == 200, r.text
        body = r.json()
        meta = body["metadata"]
        levels[rng] = meta["aggregation"]
        assert body["success"] and meta["range"] == rng and meta["pointCount"] == len(body["data"])
        assert (meta["systemIds"], meta["end"], meta["units"]) == ([a], NOW, {"solar_w": "W", "battery_soc": "%"})
        assert all(set(row) == {"timestamp", "solar_w", "battery_soc"} for row in body["data"])
    assert levels == {"1H": "raw", "6H": "raw", "24H": "5m", "7D": "daily", "30D": "daily"}

    one = get(server, cookies, "alice", systemIds=str(a), pointKeys="solar_w", range="1H").json()
    assert [row["timestamp"] for row in one["data"]] == list(range(NOW - 3600, NOW + 1, 120))
    assert all(row["solar_w"] == pytest.approx(raw[row["timestamp"]] * 1000) for row in one["data"])

    five = get(server, cookies, "alice", systemIds=str(a), pointKeys="solar_w", range="24H").json()["data"]
    assert len(five) == 24 * 12 + 1 and all(row["timestamp"] % 300 == 0 for row in five)
    assert all(sum(row["timestamp"] <= t < row["timestamp"] + 300 for t in raw) in (2, 3) for row in five[:-1])
    for row in five:  # the mean of the readings in the bucket, in W
        vals = [v for t, v in raw.items() if row["timestamp"] <= t < row["timestamp"] + 300]
        assert row["solar_w"] == pytest.approx(np.mean(vals) * 1000)

    daily = get(server, cookies, "alice", systemIds=str(a), pointKeys="solar_w,solar_kwh", range="7D").json()
    assert [row["timestamp"] % 86400 for row in daily["data"]] == [0] * 8  # UTC days touching 7 days
    assert daily["metadata"]["units"]["solar_kwh"] == "kWh"
    assert all(row["solar_kwh"] == pytest.approx(24.0, rel=1e-6) for row in daily["data"][1:-1])  # 1 kWh/h

    over = get(server, cookies, "alice", systemIds=str(a), pointKeys="solar_w", range="7D", aggregation="5m")
    assert over.json()["metadata"]["aggregation"] == "5m" and over.json()["metadata"]["pointCount"] > 6 * 96 + 288
    raw6 = get(server, cookies, "alice", systemIds=str(a), pointKeys="solar_w", range="24H", aggregation="raw")
    assert raw6.json()["metadata"]["pointCount"] == 24 * 30 + 1


def test_several_systems_and_composites_equal_the_members_roll_up_in_every_bucket(world):
    ctx, server, cookies, (a, b, c), n = world
    keys = "solar_w,battery_soc,solar_kwh"
    for rng in ("1H", "24H", "30D"):
        many = get(server, cookies, "alice", systemIds=f"{a},{b}", pointKeys=keys, range=rng).json()
        comp = get(server, cookies, "alice", systemIds="home", pointKeys=keys, range=rng).json()
        assert many["metadata"]["systemIds"] == [a, b] and comp["metadata"]["systemIds"] == [b, a]
        assert set(many["data"][0]) == {"timestamp"} | {f"{s}.{k}" for s in (a, b) for k in keys.split(",")}
        assert [r["timestamp"] for r in comp["data"]] == [r["timestamp"] for r in many["data"]]
        assert len(comp["data"]) == comp["metadata"]["pointCount"] > 0
        checked = 0
        for m, row in zip(many["data"], comp["data"]):
            for key in ("solar_w", "solar_kwh", "battery_soc"):
                va, vb = m[f"{a}.{key}"], m[f"{b}.{key}"]
                if va is None and vb is None:  # e.g. the bucket at now holds no ledger entry yet
                    assert row[key] is None
                    continue
                assert None not in (va, vb)
                # power and energy add up; state of charge is weighted by capacity (10 and 5 kWh)
                want = (10 * va + 5 * vb) / 15 if key == "battery_soc" else va + vb
                assert row[key] == pytest.approx(want), (rng, key, row["timestamp"])
                checked += 1
        assert checked > len(comp["data"]) * 2
    # root (admin) reads carol's composite member too
    assert get(server, cookies, "root", systemIds="mixed", pointKeys="solar_w", range="1H").status_code == 200


BAD = [
    ({"range": "2H"}, "invalid_parameter"),
    ({"aggregation": "hourly"}, "invalid_parameter"),
    ({"pointKeys": "nope"}, "unknown_point_key"),
    ({"pointKeys": "solar_w,drop table"}, "invalid_parameter"),
    ({"systemIds": ",".join(str(i) for i in range(1, 12))}, "too_many_systems"),
    ({"systemIds": "1,home"}, "invalid_parameter"),
    ({"systemIds": "0"}, "invalid_parameter"),
]


def test_a_raw_window_past_the_row_limit_is_refused_with_the_count(world, monkeypatch):
    ctx, server, cookies, (a, b, c), n = world
    from wattline.api.routes import historical

    ok = get(server, cookies, "alice", systemIds=str(a), pointKeys="solar_w", range="24H", aggregation="raw")
    rows = ok.json()["metadata"]["pointCount"]
    monkeypatch.setattr(historical, "MAX_RAW_READINGS", rows - 1)  # the server runs in this process
    r = get(server, cookies, "alice", systemIds=str(a), pointKeys="solar_w", range="24H", aggregation="raw")
    assert r.status_code == 400 and r.json()["code"] == "too_many_rows", r.text
    assert r.json()["details"]["readings"] == rows and r.json()["details"]["limit"] == rows - 1
    # aggregated levels are not limited by it
    assert get(server, cookies, "alice", systemIds=str(a), pointKeys="solar_w", range="24H").status_code == 200


def test_bad_input_is_a_400_and_foreign_systems_are_404(world):
    ctx, server, cookies, (a, b, c), n = world
    for params, code in BAD:
        base = {"systemIds": str(a), "pointKeys": "solar_w", "range": "1H", **params}
        r = get(server, cookies, "alice", **base)
        assert r.status_code == 400 and r.json()["code"] == code, (params, r.text)
    assert get(server, cookies, "alice", systemIds=str(a), pointKeys="solar_w").status_code == 400  # no range
    assert get(server, cookies, None, systemIds=str(a), pointKeys="solar_w", range="1H").status_code == 401
    for ids in (str(c), f"{a},{c}", "mixed", "nosuch", "999999"):
        r = get(server, cookies, "alice", systemIds=ids, pointKeys="solar_w", range="1H")
        assert r.status_code == 404 and r.json()["code"] == "not_found", (ids, r.text)
    assert get(server, cookies, "carol", systemIds=str(c), pointKeys="solar_w", range="1H").status_code == 200


def test_crons_and_the_database_overview(world):
    ctx, server, cookies, (a, b, c), n = world

    def post(path, who=None, bearer=None, **kw):
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        if who:  # a signed-in browser: the cookie and its CSRF token
            headers.update(session_headers(ctx.settings.encryption_key, cookies[who]))
        return httpx.post(server.url + path, headers=headers, timeout=60, **kw)

    db = get_db = lambda who: httpx.get(server.url + "/api/admin/database",  # noqa: E731
                                        cookies={COOKIE_NAME: cookies[who]} if who else {})
    assert db("root").json()["lastRuns"] == {"daily": None, "cleanup": None}
    assert post("/api/cron/daily", json={"action": "catchup"}).status_code == 401
    assert post("/api/cron/daily", "alice", json={"action": "catchup"}).status_code == 403
    assert post("/api/cron/daily", bearer="wrong", json={"action": "catchup"}).status_code == 401
    assert post("/api/cron/daily", bearer=CRON, json={"action": "archive"}).status_code == 400
    r = post("/api/cron/daily", bearer=CRON, json={"action": "catchup"})
    assert r.status_code == 200 and r.json()["success"] and r.json()["job"]["result"]["days_filled"] == 0, r.text
    r = post("/api/cron/daily", "root", json={"action": "clear"})
    assert r.status_code == 200 and r.json()["job"]["result"]["days_derived"] > 0
    assert post("/api/cron/cleanup", "alice").status_code == 403
    r = post("/api/cron/cleanup", bearer=CRON)
    assert r.status_code == 200 and r.json()["job"]["result"]["readings_deleted"] == 0  # retention: keep

    assert get_db(None).status_code == 401 and get_db("alice").status_code == 403
    body = get_db("root").json()
    rows = {(t["database"], t["name"]): t["rows"] for t in body["tables"]}
    assert rows[("main", "systems")] == 3 and rows[("telemetry", "readings")] == 3 * 3 * n
    assert body["lastRuns"]["daily"]["status"] == "succeeded"
    assert body["lastRuns"]["daily"]["params"] == {"action": "clear"}
    assert body["lastRuns"]["cleanup"]["result"]["readings_deleted"] == 0

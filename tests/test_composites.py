"""Composites (seed 003): the API's create/read/update/delete with who may do what
(owner, other user, viewer with and without shares, admin), the CLI, and a
composite's latest values: at every instant its power is the members' sum and its
state of charge their capacity-weighted mean (the group rules of domain/groups.py),
from the database and from a real Redis."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from helpers import sign_in_client
from world import make_ctx
from wattline import system_admin
from wattline.api.app import create_app
from wattline.cli import app as cli_app
from wattline.config import Settings
from wattline.context import AppContext, open_context
from wattline.domain.readings import ReadingBatch
from wattline.pipeline import Pipeline
from wattline.security import csrf
from wattline.security.sessions import issue_session
from wattline.security.users import create_user, get_user_principal
from wattline.store import composites_repo, systems_repo
from wattline.store.latest_redis import RedisLatestValues
from wattline.store.latest_values import DatabaseLatestValues
from wattline.store.tables import assets, group_members, groups

T0 = 1_763_812_800  # 2025-11-22T12:00:00Z
PASSWORD = "a long test password"
SELECTRONIC = {"email": "owner@example.org", "password": "not-a-real-one"}
USERS = (("alice", "user"), ("carol", "user"), ("bob", "viewer"), ("vic", "viewer"), ("root", "admin"))


class World:
    def __init__(self, dbs, tmp_path, store=None):
        base = make_ctx(dbs, tmp_path)
        self.ctx = AppContext(base.settings, dbs, Pipeline(dbs.telemetry, dbs.main_reader, latest_values=store),
                              latest_values=store)
        with dbs.main.begin() as conn:
            for name, role in USERS:
                create_user(conn, name, PASSWORD, role)
            add = lambda name, site, owner: system_admin.add_system(  # noqa: E731
                conn, base.settings, name, "selectronic", site, owner, credentials=SELECTRONIC)
            self.a, self.b, self.c = add("Home", "1", "alice"), add("Shed", "2", "alice"), add("Farm", "3", "carol")
            system_admin.share_system(conn, self.a, "bob", "alice")
            for sid, cap in ((self.a, 10.0), (self.b, 5.0)):
                conn.execute(update(assets).where(assets.c.id == sid).values(attributes={"battery_capacity_kwh": cap}))
            self.cookies = {n: issue_session(base.settings.encryption_key, get_user_principal(conn, n))
                            for n, _ in USERS}
        self.app = create_app(self.ctx)

    def ingest(self, system_id: int, ts: int, **values: float) -> None:
        with self.ctx.dbs.main_reader.connect() as conn:
            ids = {p["key"]: p["id"] for p in systems_repo.system_points(conn, system_id)}
        sids = [ids[k] for k in values]
        self.ctx.pipeline.ingest(ReadingBatch(sids, [ts] * len(sids), list(values.values()), [-1] * len(sids), [],
                                              "test"), now=ts)

    def call(self, client, who, method, path, **kw):
        client.cookies.clear()
        client.headers.pop(csrf.HEADER, None)
        if who:
            sign_in_client(client, self.ctx.settings.encryption_key, self.cookies[who])
        return client.request(method, path, **kw)


@pytest.fixture
def world(dbs, tmp_path):
    w = World(dbs, tmp_path)
    with TestClient(w.app) as client:
        w.client = client
        yield w


def counts(w) -> tuple[int, int]:
    with w.ctx.dbs.main.connect() as conn:
        return (conn.execute(select(func.count()).select_from(groups)).scalar(),
                conn.execute(select(func.count()).select_from(group_members)).scalar())


def test_crud_and_who_may_do_what(world):
    w, c = world, world.client
    call = lambda who, method, path, **kw: w.call(c, who, method, path, **kw)  # noqa: E731
    body = {"slug": "home-and-shed", "name": "Home and shed", "description": "both roofs", "memberIds": [w.b, w.a]}
    assert call(None, "POST", "/api/composite", json=body).status_code == 401
    assert call("bob", "POST", "/api/composite", json={**body, "memberIds": [w.a]}).status_code == 403  # a viewer
    r = call("alice", "POST", "/api/composite", json=body)
    assert r.status_code == 201, r.text
    made = r.json()
    cid = made["id"]
    assert made == {"id": cid, "slug": "home-and-shed", "name": "Home and shed", "description": "both roofs",
                    "favourite": False, "owner": "alice", "memberIds": [w.b, w.a]}  # members in the given order
    # the same again: idempotent; the slug with other content: a conflict; nothing written
    before = counts(w)
    again = call("alice", "POST", "/api/composite", json=body)
    assert again.status_code == 200 and again.json() == made
    assert call("alice", "POST", "/api/composite", json={**body, "memberIds": [w.a]}).status_code == 409
    assert call("alice", "POST", "/api/composite", json={**body, "slug": "other"}).status_code == 409  # name taken
    # members must all be readable by the creator: carol's system is "no system" to alice
    r = call("alice", "POST", "/api/composite", json={"slug": "x", "name": "X", "memberIds": [w.a, w.c]})
    assert r.status_code == 404 and r.json()["details"] == {"memberIds": [w.c]}
    assert call("alice", "POST", "/api/composite", json={"slug": "x", "name": "X", "memberIds": [999]}).json() == \
        {"error": "no system with id 999", "code": "not_found", "details": {"memberIds": [999]}}
    for bad, status in (({"slug": "Not OK!"}, 422), ({"memberIds": []}, 400), ({"colour": "red"}, 400),
                        ({"memberIds": [0]}, 400), ({"name": ""}, 400)):
        assert call("alice", "POST", "/api/composite", json={**body, "slug": "fresh", "name": "Fresh", **bad}
                    ).status_code == status, bad
    assert counts(w) == before

    path = f"/api/composite/{cid}"
    # readable by the owner, an admin, and users who may read every member (bob reads only a)
    assert {who: call(who, "GET", path).status_code for who, _ in USERS} == {
        "alice": 200, "carol": 404, "bob": 404, "vic": 404, "root": 200}
    assert {who: [x["id"] for x in call(who, "GET", "/api/composite").json()["composites"]] for who, _ in USERS} == {
        "alice": [cid], "carol": [], "bob": [], "vic": [], "root": [cid]}
    with w.ctx.dbs.main.begin() as conn:
        system_admin.share_system(conn, w.b, "bob", "alice")
    assert call("bob", "GET", path).json() == made
    assert call("bob", "GET", "/api/data/latest", params={"composite": "home-and-shed"}).status_code == 200
    assert call("carol", "GET", "/api/data/latest", params={"composite": "home-and-shed"}).status_code == 404
    assert call("carol", "GET", "/api/data/latest", params={"composite": str(cid)}).status_code == 404

    # writable by the owner and admins; a reader who is not the owner: 403; others: 404
    assert call("bob", "PATCH", path, json={"favourite": True}).status_code == 403
    assert call("carol", "PATCH", path, json={"favourite": True}).status_code == 404
    r = call("alice", "PATCH", path, json={"favourite": True, "description": None, "memberIds": [w.a]})
    assert r.status_code == 200 and (r.json()["favourite"], r.json()["description"], r.json()["memberIds"]) == (
        True, None, [w.a])
    assert call("alice", "PATCH", path, json={"memberIds": [w.a, w.c]}).status_code == 404  # carol's: refused
    assert call("root", "PATCH", path, json={"name": "Renamed", "slug": "renamed"}).json()["slug"] == "renamed"
    assert call("alice", "GET", path).json() == {**made, "slug": "renamed", "name": "Renamed", "description": None,
                                                 "favourite": True, "memberIds": [w.a]}
    assert call("alice", "PATCH", path, json={"owner": "carol"}).status_code == 400  # not a field
    assert call("bob", "DELETE", path).status_code == 403
    assert call("carol", "DELETE", path).status_code == 404
    assert call("alice", "DELETE", path).json() == {"success": True, "deleted": cid}
    assert call("alice", "GET", path).status_code == 404 and call("alice", "DELETE", path).status_code == 404
    assert counts(w) == (0, 0)
    with w.ctx.dbs.main.connect() as conn:  # the systems stay
        assert {s["id"] for s in systems_repo.list_systems(conn)} == {w.a, w.b, w.c}


def test_latest_parameters(world):
    w, c = world, world.client
    call = lambda who, path, **kw: w.call(c, who, "GET", path, **kw)  # noqa: E731
    assert call("alice", "/api/data/latest").status_code == 400
    assert call("alice", "/api/data/latest", params={"systemId": w.a, "composite": "x"}).status_code == 400
    assert call("alice", "/api/data/latest", params={"systemId": "x"}).status_code == 400
    assert call(None, "/api/data/latest", params={"systemId": w.a}).status_code == 401
    assert {who: call(who, "/api/data/latest", params={"systemId": w.a}).status_code for who, _ in USERS} == {
        "alice": 200, "carol": 404, "bob": 200, "vic": 404, "root": 200}
    assert call("alice", "/api/data/latest", params={"composite": "nope"}).status_code == 404
    empty = call("alice", "/api/data/latest", params={"systemId": w.b}).json()
    assert empty == {"success": True, "data": {}, "metadata": {"systemId": w.b, "displayName": "Shed",
                                                               "lastUpdate": None, "source": "database"}}


def _check_every_instant(w, client, store_name: str) -> None:
    with w.ctx.dbs.main.begin() as conn:
        cid = system_admin.add_composite(conn, "pair", "Pair", [w.a, w.b], owner="alice")
    refresh = getattr(w.ctx.latest_values, "refresh_subscriptions", None)
    if refresh:
        refresh([w.a, w.b])
    rng = np.random.default_rng(11)
    caps = {w.a: 10.0, w.b: 5.0}
    for i in range(12):
        ts = T0 + 60 * i
        got = {}
        for sid in (w.a, w.b):
            if i % 5 == 3 and sid == w.b:
                continue  # b misses a minute: its last value still counts
            got[sid] = dict(solar_w=float(rng.uniform(0, 6)), load_w=float(rng.uniform(0, 3)),
                            battery_soc=float(rng.uniform(5, 100)), solar_kwh=float(1000 + i + rng.uniform(0, 1)))
            w.ingest(sid, ts, **got[sid])
        members = {sid: w.call(client, "alice", "GET", "/api/data/latest", params={"systemId": sid}).json()["data"]
                   for sid in (w.a, w.b)}
        body = w.call(client, "alice", "GET", "/api/data/latest", params={"composite": "pair"}).json()
        data, meta = body["data"], body["metadata"]
        assert meta["compositeId"] == cid and meta["members"] == [w.a, w.b] and meta["displayName"] == "Pair"
        for key in ("solar_w", "load_w", "solar_kwh"):
            assert data[key]["value"] == pytest.approx(sum(members[s][key]["value"] for s in members), rel=1e-12)
            assert data[key]["unit"] == members[w.a][key]["unit"]
        soc = sum(members[s]["battery_soc"]["value"] * caps[s] for s in members) / sum(caps.values())
        assert data["battery_soc"] == {"value": pytest.approx(soc, rel=1e-12), "unit": "%",
                                       "timestamp": min(members[s]["battery_soc"]["timestamp"] for s in members)}
        assert meta["lastUpdate"] == max(v["timestamp"] for v in data.values())
        if store_name == "redis" and i > 0:
            assert meta["source"] == "redis"


def test_a_composite_is_its_members_rolled_up_at_every_instant(world):
    _check_every_instant(world, world.client, "database")


def test_the_same_through_redis(dbs, tmp_path, redis_server):
    store = RedisLatestValues.from_url(redis_server.url, f"t-{uuid.uuid4().hex[:6]}:",
                                       fallback=DatabaseLatestValues(dbs.telemetry), main_reader=dbs.main_reader)
    w = World(dbs, tmp_path, store)
    with TestClient(w.app) as client:
        _check_every_instant(w, client, "redis")
    with dbs.main_reader.connect() as conn:
        assert store.subscriptions(w.a) == {g["id"] for g in composites_repo.by_slug(conn, "pair")}
    store.close()


def test_soc_without_every_capacity_is_a_plain_mean(world):
    w = world
    with w.ctx.dbs.main.begin() as conn:
        conn.execute(update(assets).where(assets.c.id == w.b).values(attributes=None))
        system_admin.add_composite(conn, "pair", "Pair", [w.a, w.b], owner="alice")
    w.ingest(w.a, T0, battery_soc=10.0)
    w.ingest(w.b, T0, battery_soc=90.0)
    body = w.call(w.client, "alice", "GET", "/api/data/latest", params={"composite": "pair"}).json()
    assert body["data"]["battery_soc"]["value"] == pytest.approx(50.0)


def test_cli_adds_and_lists_composites(tmp_path, monkeypatch):
    for var in ("WATTLINE_MAIN_URL", "WATTLINE_TELEMETRY_URL", "WATTLINE_SECRET_KEY", "WATTLINE_REDIS_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WATTLINE_DATA_DIR", str(tmp_path / "data"))
    ctx = open_context(Settings(data_dir=tmp_path / "data"))
    try:
        with ctx.dbs.main.begin() as conn:
            for name, role in USERS:
                create_user(conn, name, PASSWORD, role)
            a = system_admin.add_system(conn, ctx.settings, "Home", "selectronic", "1", "alice", credentials=SELECTRONIC)
            b = system_admin.add_system(conn, ctx.settings, "Farm", "selectronic", "2", "carol", credentials=SELECTRONIC)
    finally:
        ctx.close()
    runner = CliRunner()
    r = runner.invoke(cli_app, ["composites", "add", "mine", "--name", "Mine", "--members", f"{a}",
                                "--description", "just home", "--owner", "alice", "--favourite"])
    assert r.exit_code == 0, r.output
    # the owner must be able to read every member
    r = runner.invoke(cli_app, ["composites", "add", "both", "--name", "Both", "--members", f"{a},{b}",
                                "--owner", "alice"])
    assert r.exit_code == 2 and f"no system with id {b}" in r.output
    assert runner.invoke(cli_app, ["composites", "add", "both", "--name", "Both", "--members", f"{b},{a}"]).exit_code == 0
    listed = runner.invoke(cli_app, ["composites", "list", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [(x["slug"], x["owner"], x["favourite"], x["description"], x["memberIds"]) for x in rows] == [
        ("mine", "alice", True, "just home", [a]), ("both", None, False, None, [b, a])]
    assert runner.invoke(cli_app, ["composites", "list"]).exit_code == 0


def test_roll_up_rules_come_from_the_group_table():
    from wattline.domain.latest import LatestValue, MemberPoint, roll_up_latest

    pts = [MemberPoint(1, 11, "solar_w", "power", "kW"), MemberPoint(2, 21, "solar_w", "power", "kW"),
           MemberPoint(1, 12, "battery_soc", "soc", "%"), MemberPoint(2, 22, "battery_soc", "soc", "%"),
           MemberPoint(1, 13, "price", "price", "c/kWh"), MemberPoint(2, 23, "price", "price", "c/kWh"),
           MemberPoint(1, 14, "odd", "power", "kW"), MemberPoint(2, 24, "odd", "soc", "%")]
    latest = {sid: LatestValue(sid // 10, sid, 100 + sid, float(v)) for sid, v in (
        (11, 2), (21, 3), (12, 10), (22, 90), (13, 20), (23, 30), (14, 1), (24, 1))}
    got = roll_up_latest(pts, latest, {1: 1.0, 2: 9.0})
    assert list(got) == ["solar_w", "battery_soc"]  # a price has no rule; mixed metric types do not combine
    assert (got["solar_w"].value, got["solar_w"].ts, got["solar_w"].members) == (5.0, 111, (1, 2))
    assert got["battery_soc"].value == pytest.approx(82.0)  # 1 kWh at 10 % and 9 kWh at 90 %
    assert roll_up_latest(pts, {11: latest[11]}, {})["solar_w"].value == 2.0  # a member without a value

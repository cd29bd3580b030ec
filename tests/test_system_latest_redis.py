"""Systems' latest values in a real Redis (the test's own redis-server, from
tests/redis/test.conf, never the shared one on 6379): the ``latest:system:{id}`` hash
by point key with value, time and unit; newer wins; ``subscriptions:system:{id}`` kept
by the composite API and rebuilt when missing; keys namespaced by environment; and
Redis stopped mid-run: reads keep answering from the database, and what was written
during the outage is in Redis once it is back."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import redis
from fastapi.testclient import TestClient

from helpers import sign_in_client
from world import make_ctx
from wattline import provisioning, system_admin
from wattline.api.app import create_app
from wattline.config import Settings
from wattline.context import AppContext
from wattline.domain.latest import LatestValue
from wattline.domain.readings import ReadingBatch
from wattline.pipeline import Pipeline
from wattline.security.sessions import issue_session
from wattline.security.users import create_user, get_user_principal
from wattline.store import systems_repo
from wattline.store.latest_redis import RedisLatestValues
from wattline.store.latest_values import DatabaseLatestValues

T0 = 1_763_812_800  # 2025-11-22T12:00:00Z
PASSWORD = "a long test password"
SELECTRONIC = {"email": "owner@example.org", "password": "not-a-real-one"}


class World:
    def __init__(self, dbs, tmp_path, url: str, namespace: str):
        base = make_ctx(dbs, tmp_path)
        self.store = RedisLatestValues.from_url(url, namespace, fallback=DatabaseLatestValues(dbs.telemetry),
                                                retry_after_s=0.2, main_reader=dbs.main_reader)
        self.ctx = AppContext(base.settings, dbs, Pipeline(dbs.telemetry, dbs.main_reader, latest_values=self.store),
                              latest_values=self.store)
        with dbs.main.begin() as conn:
            for name, role in (("alice", "user"), ("root", "admin")):
                create_user(conn, name, PASSWORD, role)
            self.a = system_admin.add_system(conn, base.settings, "Home", "selectronic", "1", "alice",
                                             credentials=SELECTRONIC)
            self.b = system_admin.add_system(conn, base.settings, "Shed", "selectronic", "2", "alice",
                                             credentials=SELECTRONIC)
            self.plant = provisioning.add_vendor_plant(conn, "plant 7", "solarman", "7007", "UTC", asset_id=70)
            self.cookies = {n: issue_session(base.settings.encryption_key, get_user_principal(conn, n))
                            for n in ("alice", "root")}

    def ingest(self, system_id: int, ts: int, **values: float) -> None:
        with self.ctx.dbs.main_reader.connect() as conn:
            ids = {p["key"]: p["id"] for p in systems_repo.system_points(conn, system_id)}
        sids = [ids[k] for k in values]
        self.ctx.pipeline.ingest(ReadingBatch(sids, [ts] * len(sids), list(values.values()), [-1] * len(sids), [],
                                              "test"), now=ts)


@pytest.fixture
def world(dbs, tmp_path, redis_server):
    w = World(dbs, tmp_path, redis_server.url, f"test-{uuid.uuid4().hex[:8]}:")
    with TestClient(create_app(w.ctx)) as client:
        sign_in_client(client, w.ctx.settings.encryption_key, w.cookies["alice"])
        w.client = client
        w.direct = redis.Redis(port=redis_server.port, decode_responses=True)
        yield w
        w.direct.close()
        w.store.close()


def latest(w: World, system_id: int) -> dict:
    r = w.client.get("/api/data/latest", params={"systemId": system_id})
    assert r.status_code == 200, r.text
    return r.json()


def held(w: World, system_id: int) -> dict[str, dict]:
    return {k: json.loads(v) for k, v in w.direct.hgetall(w.store.system_key(system_id)).items()}


def test_a_system_hash_holds_value_time_and_unit_per_point_key(world):
    w = world
    w.ingest(w.a, T0, solar_w=3.45, battery_soc=87.0, solar_kwh=1200.5)
    key = w.store.system_key(w.a)
    assert key == f"{w.store.namespace}latest:system:{w.a}"
    assert held(w, w.a) == {"solar_w": {"value": 3.45, "timestamp": T0, "unit": "kW"},
                            "battery_soc": {"value": 87.0, "timestamp": T0, "unit": "%"},
                            "solar_kwh": {"value": 1200.5, "timestamp": T0, "unit": "kWh"}}
    assert not w.direct.exists(w.store.key(w.a))  # a system is not kept by series id
    body = latest(w, w.a)
    assert body["success"] is True
    assert body["data"] == {"solar_w": {"value": 3450.0, "timestamp": T0, "unit": "W"},
                            "battery_soc": {"value": 87.0, "timestamp": T0, "unit": "%"},
                            "solar_kwh": {"value": 1200.5, "timestamp": T0, "unit": "kWh"}}
    assert body["metadata"] == {"systemId": w.a, "displayName": "Home", "lastUpdate": T0, "source": "redis"}
    # the API reads Redis: a value planted there is what it answers
    w.direct.hset(key, "solar_w", json.dumps({"value": 9.0, "timestamp": T0, "unit": "kW"}))
    assert latest(w, w.a)["data"]["solar_w"]["value"] == 9000.0  # 9 kW held, answered in W
    # a hidden point is not answered
    with w.ctx.dbs.main.begin() as conn:
        system_admin.edit_point(conn, w.a, "solar_kwh", visible=False)
    assert set(latest(w, w.a)["data"]) == {"solar_w", "battery_soc"}
    meta = w.client.get("/api/data/latest", params={"systemId": w.a, "includeMetadata": "true"}).json()["metadata"]
    assert meta["points"]["battery_soc"]["metricType"] == "soc"

    # plants keep their hash by series id
    store, direct = w.store, w.direct
    with w.ctx.dbs.main_reader.connect() as conn:
        from wattline.store import registry
        power = registry.point(conn, w.plant, "power")["id"]
    w.ctx.pipeline.ingest(ReadingBatch([power], [T0], [5.0], [-1], [], "test"), now=T0)
    assert direct.hgetall(store.key(w.plant)) == {str(power): f"{T0} 5.0"}
    assert store.read(w.plant, [power]) == {power: LatestValue(w.plant, power, T0, 5.0)}


def test_newer_wins_whatever_order_the_batches_come_in(world):
    w = world
    w.ingest(w.a, T0 + 60, solar_w=4.0)
    w.ingest(w.a, T0, solar_w=3.0)  # late
    assert held(w, w.a)["solar_w"] == {"value": 4.0, "timestamp": T0 + 60, "unit": "kW"}
    w.ingest(w.a, T0 + 60, solar_w=4.5)  # the same instant again: the later write wins
    assert held(w, w.a)["solar_w"]["value"] == 4.5
    w.ingest(w.a, T0 + 120, solar_w=5.0)
    assert latest(w, w.a)["data"]["solar_w"] == {"value": 5000.0, "timestamp": T0 + 120, "unit": "W"}
    # an unreadable field is answered by the database and replaced
    w.direct.hset(w.store.system_key(w.a), "solar_w", "{garbage")
    assert latest(w, w.a)["data"]["solar_w"]["value"] == 5000.0  # W
    assert held(w, w.a)["solar_w"]["timestamp"] == T0 + 120


def test_subscriptions_follow_the_composites(world):
    w = world
    subs = lambda sid: {int(m) for m in w.direct.smembers(w.store.subscriptions_key(sid))} - {0}  # noqa: E731
    r = w.client.post("/api/composite", json={"slug": "both", "name": "Both", "memberIds": [w.a, w.b]})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert subs(w.a) == {cid} and subs(w.b) == {cid}
    other = w.client.post("/api/composite", json={"slug": "home", "name": "Home only", "memberIds": [w.a]}).json()["id"]
    assert subs(w.a) == {cid, other} and subs(w.b) == {cid}
    assert w.client.patch(f"/api/composite/{cid}", json={"memberIds": [w.a]}).status_code == 200
    assert subs(w.a) == {cid, other} and subs(w.b) == set()
    assert w.client.delete(f"/api/composite/{other}").status_code == 200
    assert subs(w.a) == {cid}
    # lost (a Redis restarted empty, a key deleted): rebuilt from the database when asked
    w.direct.delete(w.store.subscriptions_key(w.a))
    assert w.store.subscriptions(w.a) == {cid}
    assert subs(w.a) == {cid}
    assert w.store.subscriptions(w.b) == set()


def composite_latest(w: World, ref: str) -> dict:
    r = w.client.get("/api/data/latest", params={"composite": ref})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_members_write_drops_the_cached_roll_up_of_the_composites_it_feeds(world):
    w = world
    cid = w.client.post("/api/composite", json={"slug": "both", "name": "Both", "memberIds": [w.a, w.b]}).json()["id"]
    ckey = w.store.composite_key(cid)
    w.ingest(w.a, T0, solar_w=3.0)
    w.ingest(w.b, T0, solar_w=1.0)
    assert not w.direct.exists(ckey)
    first = composite_latest(w, "both")
    assert first["data"]["solar_w"] == {"value": 4000.0, "timestamp": T0, "unit": "W"}
    assert first["metadata"]["source"] == "redis"
    assert json.loads(w.direct.hget(ckey, "data"))["solar_w"]["value"] == 4000.0  # cached
    # the cache is what answers: a planted roll-up is served while no member is written
    planted = {"solar_w": {"value": 123.0, "timestamp": T0, "unit": "W"}}
    w.direct.hset(ckey, "data", json.dumps(planted))
    assert composite_latest(w, "both")["data"] == planted
    # a member's poll: its write drops the roll-up (through its subscription set) ...
    gen = int(w.direct.get(f"{ckey}:gen"))
    w.ingest(w.b, T0 + 60, solar_w=2.5)
    assert not w.direct.exists(ckey) and int(w.direct.get(f"{ckey}:gen")) == gen + 1
    # ... so the next read is right at once, and cached again
    after = composite_latest(w, str(cid))
    assert after["data"]["solar_w"] == {"value": 5500.0, "timestamp": T0, "unit": "W"}  # ts: the oldest member's
    assert json.loads(w.direct.hget(ckey, "data")) == after["data"]
    # a composite the system does not feed is left alone
    only_a = w.client.post("/api/composite", json={"slug": "a", "name": "A", "memberIds": [w.a]}).json()["id"]
    composite_latest(w, "a")
    assert w.direct.exists(w.store.composite_key(only_a))
    w.ingest(w.b, T0 + 120, solar_w=3.0)
    assert w.direct.exists(w.store.composite_key(only_a)) and not w.direct.exists(ckey)
    # a point hidden changes what the roll-up is made of: not served from the cache
    composite_latest(w, "both")
    with w.ctx.dbs.main.begin() as conn:
        system_admin.edit_point(conn, w.b, "solar_w", visible=False)
    assert composite_latest(w, "both")["data"]["solar_w"]["value"] == 3000.0  # a's alone


def test_a_lost_subscription_set_is_rebuilt_by_the_write_and_still_drops_the_roll_up(world):
    w = world
    cid = w.client.post("/api/composite", json={"slug": "both", "name": "Both", "memberIds": [w.a, w.b]}).json()["id"]
    w.ingest(w.a, T0, solar_w=3.0)
    composite_latest(w, "both")
    assert w.direct.exists(w.store.composite_key(cid))
    w.direct.delete(w.store.subscriptions_key(w.a))  # read from the database, not guessed
    w.ingest(w.a, T0 + 60, solar_w=4.0)
    assert not w.direct.exists(w.store.composite_key(cid))
    assert w.direct.smembers(w.store.subscriptions_key(w.a)) == {"0", str(cid)}
    assert composite_latest(w, "both")["data"]["solar_w"]["value"] == 4000.0


def test_a_roll_up_read_before_a_members_write_is_not_kept(world):
    w = world
    cid = w.client.post("/api/composite", json={"slug": "both", "name": "Both", "memberIds": [w.a]}).json()["id"]
    w.ingest(w.a, T0, solar_w=3.0)
    _, token = w.store.cached_composite(cid, "sig")
    w.ingest(w.a, T0 + 60, solar_w=4.0)  # lands between the reader's members read and its store
    assert w.store.store_composite(cid, token, "sig", {"solar_w": {}}) is False
    assert not w.direct.exists(w.store.composite_key(cid))
    _, token = w.store.cached_composite(cid, "sig")
    assert w.store.store_composite(cid, token, "sig", {"solar_w": {}}) is True
    assert w.store.cached_composite(cid, "sig")[0] == {"solar_w": {}}
    assert w.store.cached_composite(cid, "other")[0] is None  # other members or points
    assert 0 < w.direct.ttl(w.store.composite_key(cid)) <= 86_400


def test_keys_are_namespaced_by_environment(dbs, tmp_path, redis_server, monkeypatch):
    monkeypatch.delenv("WATTLINE_REDIS_NAMESPACE", raising=False)
    monkeypatch.setenv("WATTLINE_ENV", "prod")
    assert Settings().redis_namespace == "prod:"
    monkeypatch.setenv("WATTLINE_REDIS_NAMESPACE", "blue:")
    assert Settings().redis_namespace == "blue:"  # the explicit prefix wins
    monkeypatch.delenv("WATTLINE_REDIS_NAMESPACE")
    monkeypatch.delenv("WATTLINE_ENV")
    assert Settings().redis_namespace == "wattline:"

    suffix = uuid.uuid4().hex[:6]
    prod = World(dbs, tmp_path, redis_server.url, Settings(env=f"prod{suffix}").redis_namespace)
    dev = RedisLatestValues.from_url(redis_server.url, Settings(env=f"dev{suffix}").redis_namespace,
                                     fallback=DatabaseLatestValues(dbs.telemetry), main_reader=dbs.main_reader)
    direct = redis.Redis(port=redis_server.port, decode_responses=True)
    try:
        prod.ingest(prod.a, T0, solar_w=1.5)
        assert direct.exists(f"prod{suffix}:latest:system:{prod.a}")
        assert list(direct.scan_iter(f"dev{suffix}:*")) == []
        with dbs.main_reader.connect() as conn:
            sid = next(p["id"] for p in systems_repo.system_points(conn, prod.a) if p["key"] == "solar_w")
        # dev's Redis holds nothing: the database answers it, and fills dev's own key
        assert dev.read_assets({prod.a: [sid]}).source == "database"
        assert direct.exists(f"dev{suffix}:latest:system:{prod.a}")
        assert dev.read_assets({prod.a: [sid]}).source == "redis"
    finally:
        direct.close()
        dev.close()
        prod.store.close()


def test_redis_stopped_mid_run(world, redis_server):
    w = world
    w.ingest(w.a, T0, solar_w=3.0, battery_soc=50.0)
    assert latest(w, w.a)["metadata"]["source"] == "redis"
    cid = w.client.post("/api/composite", json={"slug": "pair", "name": "Pair", "memberIds": [w.a]}).json()["id"]

    redis_server.stop()  # mid-run
    w.ingest(w.a, T0 + 60, solar_w=4.0, battery_soc=55.0)  # the ingest succeeds; the write is kept
    for _ in range(3):
        body = latest(w, w.a)
        assert body["metadata"]["source"] == "database"
        assert body["data"]["solar_w"] == {"value": 4000.0, "timestamp": T0 + 60, "unit": "W"}
        time.sleep(0.25)  # past retry_after_s: Redis is tried again, and the database answers
    # composites change during the outage; their subscriptions are rebuilt on return
    assert w.client.patch(f"/api/composite/{cid}", json={"memberIds": [w.a, w.b]}).status_code == 200
    assert w.store.subscriptions(w.b) == {cid}  # the database answers meanwhile
    w.ingest(w.b, T0 + 90, solar_w=1.0)
    comp = w.client.get("/api/data/latest", params={"composite": "pair"}).json()
    assert comp["data"]["solar_w"]["value"] == pytest.approx(5000.0) and comp["metadata"]["source"] == "database"

    redis_server.start()  # empty: no persistence
    time.sleep(0.25)
    body = latest(w, w.a)
    assert body["metadata"]["source"] == "redis"  # caught up: the outage's values are in Redis
    assert body["data"]["solar_w"] == {"value": 4000.0, "timestamp": T0 + 60, "unit": "W"}
    assert held(w, w.a)["battery_soc"] == {"value": 55.0, "timestamp": T0 + 60, "unit": "%"}
    assert held(w, w.b)["solar_w"] == {"value": 1.0, "timestamp": T0 + 90, "unit": "kW"}
    assert w.direct.smembers(w.store.subscriptions_key(w.b)) == {"0", str(cid)}  # 0: the set exists
    w.ingest(w.a, T0 + 120, solar_w=6.0)
    assert latest(w, w.a)["data"]["solar_w"]["value"] == 6000.0  # W
    comp = composite_latest(w, "pair")  # cached again after the outage, and dropped by the next write
    assert comp["data"]["solar_w"]["value"] == pytest.approx(7000.0) and comp["metadata"]["source"] == "redis"
    assert w.direct.exists(w.store.composite_key(cid))
    w.ingest(w.b, T0 + 180, solar_w=2.0)
    assert composite_latest(w, "pair")["data"]["solar_w"]["value"] == pytest.approx(8000.0)

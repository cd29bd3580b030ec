"""Latest values through Redis, against a real redis-server of the test's own (never
the shared one on 6379): the pipeline writes after commit, the API reads; with Redis
stopped mid-run the API keeps answering from the database, counts it and warns once;
restarted, Redis is caught up and used again."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from world import make_ctx
from wattline import provisioning
from wattline.api.app import create_app
from wattline.context import AppContext
from wattline.domain.latest import LatestValue, newest_per_series
from wattline.domain.readings import ReadingBatch
from wattline.pipeline import Pipeline
from wattline.security import tokens
from wattline.store import latest_redis, registry
from wattline.store.latest_redis import RedisLatestValues
from wattline.store.latest_values import DatabaseLatestValues, open_latest_values

PLANT = 7
T0 = 1_763_812_800  # 2025-11-22T12:00:00Z


@pytest.fixture
def served(dbs, tmp_path, redis_server):
    base = make_ctx(dbs, tmp_path)
    namespace = f"test-{uuid.uuid4().hex[:8]}:"
    store = RedisLatestValues.from_url(redis_server.url, namespace, fallback=DatabaseLatestValues(dbs.telemetry),
                                       retry_after_s=0.2)
    ctx = AppContext(base.settings, dbs, Pipeline(dbs.telemetry, dbs.main_reader, latest_values=store),
                     latest_values=store)
    with dbs.main.begin() as conn:
        provisioning.add_vendor_plant(conn, "plant 7", "solarman", "7007", "UTC", asset_id=PLANT)
        token = tokens.create_token(conn, "viewer", "viewer")
    with TestClient(create_app(ctx)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield ctx, store, client, redis.Redis(port=redis_server.port, decode_responses=True)


def _ingest(ctx: AppContext, ts: int, energy_kwh: float, power_kw: float) -> None:
    with ctx.dbs.main_reader.connect() as conn:
        sids = [registry.point(conn, PLANT, k)["id"] for k in ("energy_total", "power")]
    ctx.pipeline.ingest(ReadingBatch(sids, [ts, ts], [energy_kwh, power_kw], [-1, -1], [], "test"), now=ts)


def _values(client) -> dict[str, tuple[str, float]]:
    r = client.get(f"/api/telemetry/plant/{PLANT}/latest")
    assert r.status_code == 200, r.text
    return {k: (v["ts"], v["value"]) for k, v in r.json()["values"].items()}


def _count(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_reads_fall_back_to_the_database_while_redis_is_down(served, redis_server, monkeypatch):
    ctx, store, client, direct = served
    key = store.key(PLANT)
    assert key.startswith(store.namespace) and key.endswith(f"latest:asset:{PLANT}")

    _ingest(ctx, T0, 100.0, 5.0)
    assert _values(client) == {"energy_total": ("2025-11-22T12:00:00Z", 100.0),
                               "power": ("2025-11-22T12:00:00Z", 5.0)}
    held = direct.hgetall(key)
    assert sorted(held.values()) == [f"{T0} 100.0", f"{T0} 5.0"]
    # the API reads Redis: a value planted there is what it answers
    power_sid = next(f for f, v in held.items() if v == f"{T0} 5.0")
    direct.hset(key, power_sid, f"{T0} 6.5")
    assert _values(client)["power"] == ("2025-11-22T12:00:00Z", 6.5)
    direct.hset(key, power_sid, f"{T0} 5.0")

    warnings = []
    real_warning = latest_redis.log.warning
    monkeypatch.setattr(latest_redis.log, "warning", lambda *a, **k: (warnings.append(a), real_warning(*a, **k)))
    fallbacks = _count("wattline_latest_values_fallback_total", reason="unavailable")
    write_errors = _count("wattline_latest_values_redis_errors_total", operation="write")

    redis_server.stop()  # mid-run
    _ingest(ctx, T0 + 900, 101.0, 7.0)  # the ingest succeeds; the Redis write is kept
    assert _count("wattline_latest_values_redis_errors_total", operation="write") == write_errors + 1
    for _ in range(3):
        assert _values(client) == {"energy_total": ("2025-11-22T12:15:00Z", 101.0),
                                   "power": ("2025-11-22T12:15:00Z", 7.0)}
        time.sleep(0.25)  # past retry_after_s: every read tries Redis again, and falls back
    assert _count("wattline_latest_values_fallback_total", reason="unavailable") >= fallbacks + 3
    assert client.get(f"/api/plants/{PLANT}").json()["latest"]["power"]["value"] == 7.0
    assert len(warnings) == 1 and warnings[0][0] == "latest.redis_unavailable"  # once per outage

    redis_server.start()  # empty: no persistence
    time.sleep(0.25)
    assert _values(client)["power"] == ("2025-11-22T12:15:00Z", 7.0)
    assert sorted(direct.hgetall(key).values()) == [f"{T0 + 900} 101.0", f"{T0 + 900} 7.0"]  # caught up
    _ingest(ctx, T0 + 1800, 102.0, 8.0)
    assert sorted(direct.hgetall(key).values()) == [f"{T0 + 1800} 102.0", f"{T0 + 1800} 8.0"]
    direct.hset(key, power_sid, f"{T0 + 1800} 8.5")
    assert _values(client)["power"] == ("2025-11-22T12:30:00Z", 8.5)  # answered by Redis again
    assert len(warnings) == 1


def test_a_late_reading_does_not_hide_a_newer_value(served):
    ctx, store, client, direct = served
    _ingest(ctx, T0 + 900, 101.0, 7.0)
    _ingest(ctx, T0, 100.0, 5.0)  # late
    assert sorted(direct.hgetall(store.key(PLANT)).values()) == [f"{T0 + 900} 101.0", f"{T0 + 900} 7.0"]
    assert _values(client)["power"] == ("2025-11-22T12:15:00Z", 7.0)


def test_redis_restarted_empty_is_refilled_from_the_database(served, redis_server):
    ctx, store, client, direct = served
    _ingest(ctx, T0, 100.0, 5.0)
    direct.delete(store.key(PLANT))  # e.g. a Redis restarted without persistence
    missing = _count("wattline_latest_values_fallback_total", reason="missing")
    assert _values(client)["energy_total"] == ("2025-11-22T12:00:00Z", 100.0)
    assert _count("wattline_latest_values_fallback_total", reason="missing") == missing + 1
    assert sorted(direct.hgetall(store.key(PLANT)).values()) == [f"{T0} 100.0", f"{T0} 5.0"]


def test_without_redis_the_database_answers(dbs):
    store = open_latest_values(dbs.telemetry, None)
    assert isinstance(store, DatabaseLatestValues) and store.read(PLANT, []) == {}


def test_newest_per_series_takes_the_last_of_equal_timestamps():
    got = newest_per_series(np.array([2, 1, 2, 1, 2]), np.array([10, 30, 20, 20, 20]),
                            np.array([1.0, 2.0, 3.0, 4.0, 5.0]), {1: 7, 2: 8})
    assert got == [LatestValue(7, 1, 30, 2.0), LatestValue(8, 2, 20, 5.0)]


def test_settings_choose_redis_for_the_api_and_the_pipeline(tmp_path, redis_server):
    from wattline.config import Settings
    from wattline.context import open_context

    settings = Settings(data_dir=tmp_path / "data", redis_url=redis_server.url, redis_namespace="prod:")
    ctx = open_context(settings)
    try:
        assert isinstance(ctx.latest_values, RedisLatestValues) and ctx.pipeline.latest_values is ctx.latest_values
        assert ctx.latest_values.key(3) == "prod:latest:asset:3" and redis_server.url not in repr(settings)
        assert ctx.latest_values.system_key(3) == "prod:latest:system:3"
        assert ctx.latest_values.main_reader is ctx.dbs.main_reader  # systems kept by point key
    finally:
        ctx.close()
    staged = open_context(Settings(data_dir=tmp_path / "staged", redis_url=redis_server.url, env="dev"))
    try:
        assert staged.latest_values.subscriptions_key(3) == "dev:subscriptions:system:3"
    finally:
        staged.close()
    plain = open_context(Settings(data_dir=tmp_path / "plain"))
    try:
        assert isinstance(plain.latest_values, DatabaseLatestValues) and plain.pipeline.latest_values is None
    finally:
        plain.close()


def test_an_unreadable_field_is_answered_by_the_database_and_replaced(served):
    ctx, store, client, direct = served
    _ingest(ctx, T0, 100.0, 5.0)
    key = store.key(PLANT)
    for field in direct.hkeys(key):
        direct.hset(key, field, "garbage")
    assert _values(client)["power"] == ("2025-11-22T12:00:00Z", 5.0)
    assert sorted(direct.hgetall(key).values()) == [f"{T0} 100.0", f"{T0} 5.0"]

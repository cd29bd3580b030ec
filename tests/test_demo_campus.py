"""The campus of ``wattline demo``: registry, ledger, cost; a second run changes
nothing; through Mosquitto the ledger gets exactly what the HTTP path gives it."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from helpers import make_sqlite
from world import make_ctx
from wattline import demo, demo_campus, provisioning
from wattline.domain import timeutil
from wattline.store import cost_versions_repo, device_registry, queries

# a Wednesday 14:30 in Asia/Kolkata: classes today since 09:00, and all of Tuesday before
NOW = timeutil.parse_instant("2025-11-05T14:30:00+05:30")
TZ = demo_campus.TIMEZONE


def _ctx(tmp_path, name: str):
    d = tmp_path / name
    d.mkdir()
    dbs = make_sqlite(d)
    return make_ctx(dbs, d)


def _day_energy(ctx, campus, day_offset: int) -> dict[str, tuple[int, int]]:
    """classroom -> (energy milli-Wh, cost micro-INR) of local today + ``day_offset``."""
    day = timeutil.local_date(NOW + day_offset * 86400, TZ)
    start, end = timeutil.day_bounds(day, TZ)
    out = {}
    with ctx.dbs.main.connect() as conn:
        assets = {device_registry.device(conn, campus.organization_id, r["esp32_name"], r["device_id"])
                  ["series"]["energy_total"]: r["asset_id"]
                  for r in device_registry.list_devices(conn, campus.organization_id)}
        tariffs = cost_versions_repo.tariffs_for_series(conn, assets)
    for room, ids in campus.series.items():
        e = c = 0
        for sid in ids:
            (b,) = queries.energy_buckets(ctx.dbs.telemetry, sid, "day", start, end, TZ, tariff=tariffs[sid])
            e += b.energy_milli_wh
            c += b.cost_micro
        out[room] = (e, c)
    return out


def _counts(ctx) -> tuple:
    with ctx.dbs.telemetry.connect() as c:
        tel = tuple(c.exec_driver_sql(f"SELECT COUNT(*) FROM {t}").scalar()
                    for t in ("raw_events", "readings", "device_quarantine"))
    with ctx.dbs.main.connect() as c:
        main = tuple(c.exec_driver_sql(f"SELECT COUNT(*) FROM {t}").scalar()
                     for t in ("organizations", "groups", "assets", "points", "cost_versions"))
    return tel + main


def test_the_demo_campus_has_its_registry_energy_and_cost_and_a_second_run_changes_nothing(tmp_path):
    ctx = _ctx(tmp_path, "http")
    campus = demo_campus.set_up(ctx, now=NOW)
    result = demo_campus.feed(ctx, campus, now=NOW)
    assert result.path == "http" and result.kept == 0
    assert result.accepted + result.repeats == result.telemetry > 3000  # ~1.6 days x 12 devices every 5 min

    with ctx.dbs.main.connect() as conn:
        rooms = provisioning.classrooms(conn, campus.organization_id)
        versions = [cost_versions_repo.public(v) for v in cost_versions_repo.list_versions(conn)]
    assert [(r["name"], r["devices"], r["effective_timezone"]) for r in rooms] == [
        ("CR-101", 4, TZ), ("CR-102", 4, TZ), ("CR-103", 4, TZ)]
    assert [(v["cost_per_kwh"], v["currency"], v["scope"]) for v in versions] == [("8.50", "INR", "organization")]

    today, yesterday = _day_energy(ctx, campus, 0), _day_energy(ctx, campus, -1)
    for room in ("CR-101", "CR-102", "CR-103"):
        for energy, cost in (today[room], yesterday[room]):
            assert energy > 100_000  # lights and fans through the periods: well over 0.1 kWh a day
            # 8.50 INR/kWh: 8.5 micro-INR per milli-Wh, each entry's cost rounded to a micro-INR
            assert abs(cost - energy * 8.5) <= 0.5 * (86400 // demo_campus.INTERVAL_S) * len(campus.series[room])

    out = io.StringIO()
    demo_campus.print_summary(ctx, campus, result, Console(file=out, width=120), now=NOW)
    text = out.getvalue()
    assert "http://127.0.0.1:8000/classrooms/CR-101" in text and "Demo Campus (Asia/Kolkata)" in text
    assert f"{today['CR-101'][0] / 1e6:.3f}" in text and f"{today['CR-101'][1] / 1e6:.2f}" in text

    before = _counts(ctx)
    again = demo_campus.feed(ctx, demo_campus.set_up(ctx, now=NOW), now=NOW)
    assert again.accepted == 0 and again.repeats == again.telemetry > 0  # the last hour, sent again
    assert _counts(ctx) == before
    assert _day_energy(ctx, campus, 0) == today
    ctx.close()


@pytest.mark.mqtt
def test_through_mosquitto_the_ledger_gets_what_the_http_path_gives(tmp_path, mqtt_broker):
    http, mqtt = _ctx(tmp_path, "http"), _ctx(tmp_path, "mqtt")
    a = demo_campus.set_up(http, now=NOW)
    demo_campus.feed(http, a, now=NOW)
    b = demo_campus.set_up(mqtt, now=NOW)
    result = demo_campus.feed(mqtt, b, mqtt_url=mqtt_broker.url, now=NOW)
    assert result.path == "mqtt" and result.committed > 3000
    assert _day_energy(mqtt, b, 0) == _day_energy(http, a, 0)
    assert _day_energy(mqtt, b, -1) == _day_energy(http, a, -1)
    http.close()
    mqtt.close()


def test_the_demo_prints_the_campus_and_without_a_broker_falls_back_to_http(tmp_path, set_clock, monkeypatch):
    from mqtt_broker import free_port

    ctx = _ctx(tmp_path, "cli")
    ctx.settings.mqtt_url = f"mqtt://127.0.0.1:{free_port()}"  # nobody listens there
    monkeypatch.setattr(demo_campus, "MQTT_CONNECT_S", 1.0)
    set_clock(NOW)
    out = io.StringIO()
    campus = demo.campus(ctx, Console(file=out, width=120), port=8123)
    text = out.getvalue()
    assert "no feed through Mosquitto" in text and "fed through the HTTP ingest path" in text
    assert "http://127.0.0.1:8123/classrooms/CR-101" in text
    assert all(e > 0 for e, _ in _day_energy(ctx, campus, -1).values())
    ctx.close()

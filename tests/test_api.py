"""The REST API over real HTTP (uvicorn on loopback), on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from world import WorldPlant, cloud_config, make_ctx, set_up
from wattline import clock
from wattline.api.app import create_app
from wattline.security import tokens
from wattline.simulator.vendor_cloud.server import BackgroundCloud

DAY = 86400


class Server:
    def __init__(self, app):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def api(dbs, tmp_path):
    ctx = make_ctx(dbs, tmp_path)
    ctx.settings.cron_secret = "cron-secret-for-tests"
    now = clock.now_s() // 900 * 900
    plants = [WorldPlant(123, "solarman", "64786338", "UTC", now - 3 * DAY),
              WorldPlant(124, "sungrow", "5001240", "Europe/Berlin", now - 3 * DAY)]
    cfg = cloud_config(plants)
    cfg.clock = clock.now  # live data up to now, so the 24-hour window has readings
    with BackgroundCloud(cfg) as cloud:
        set_up(ctx, cloud.base_url, plants, work_order=456)
        with ctx.dbs.main.begin() as conn:
            toks = {role: tokens.create_token(conn, f"{role} token", role)
                    for role in ("superadmin", "viewer")}
        with Server(create_app(ctx)) as server:
            yield server.url, toks, ctx


def _h(token):
    return {"Authorization": f"Bearer {token}"}


def _wait_job(url, job_url, token, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(url + job_url, headers=_h(token)).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError("job did not finish")


def _ledger_kwh(ctx, series_id: int, start: str, end: str) -> float:
    """Sum of the series' ledger deltas over [start, end) (ISO instants), in kWh, read
    from the database; no entry may straddle the edges (the sum would be ambiguous)."""
    from sqlalchemy import text

    from wattline.domain.timeutil import parse_instant

    with ctx.dbs.telemetry.connect() as conn:
        total, straddling = conn.execute(text(
            "SELECT COALESCE(SUM(CASE WHEN start_ts >= :lo AND end_ts <= :hi THEN delta_milli_wh END), 0), "
            "COUNT(CASE WHEN (start_ts < :lo AND end_ts > :lo) OR (start_ts < :hi AND end_ts > :hi) THEN 1 END) "
            "FROM ledger WHERE series_id = :sid"),
            {"lo": parse_instant(start), "hi": parse_instant(end), "sid": series_id}).one()
    assert straddling == 0
    return int(total) / 1e6


def _series(ctx, plant_id: int, key: str) -> int:
    from wattline.store import registry

    with ctx.dbs.main_reader.connect() as conn:
        return registry.point(conn, plant_id, key)["id"]


def _seconds(duration: str) -> int:
    m = re.fullmatch(r"(?:(\d+)h )?(\d+)m (\d+)s", duration)
    assert m, duration
    h, mi, s = (int(g or 0) for g in m.groups())
    assert mi < 60 and s < 60
    return h * 3600 + mi * 60 + s


def test_backfill_job_then_telemetry_charts_and_summaries(api):
    url, tok, ctx = api
    t0 = time.monotonic()
    r = httpx.post(f"{url}/api/telemetry/plant/123/backfill", headers=_h(tok["superadmin"]))
    assert r.status_code == 202 and r.headers["location"] == r.json()["jobUrl"]
    job = _wait_job(url, r.json()["jobUrl"], tok["viewer"])
    elapsed = time.monotonic() - t0
    assert job["status"] == "succeeded", job
    listed = httpx.get(f"{url}/api/jobs", headers=_h(tok["viewer"])).json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]] and listed[0]["kind"] == "backfill"
    result = job["result"]
    assert result["success"] is True and result["plantId"] == 123 and result["recordsSynced"] > 200
    assert set(result["aggregates"]) == {"daily_energy_kwh", "monthly_energy_mwh", "yearly_energy_mwh",
                                         "total_energy_mwh", "current_power_kw"}
    assert result["chunksProcessed"] >= 1 and 0 <= _seconds(result["duration"]) <= elapsed + 1

    t = httpx.get(f"{url}/api/telemetry/plant/123?hours=24", headers=_h(tok["viewer"])).json()
    assert t["plantId"] == 123 and t["period"] == "24h" and t["recordCount"] == len(t["data"]) >= 90
    row = t["data"][-1]
    assert set(row) == {"ts", "total_energy_mwh", "power_kw", "raw"} and "lastUpdateTime" in row["raw"]

    e = httpx.get(f"{url}/api/telemetry/plant/123/charts/energy-15m", headers=_h(tok["viewer"])).json()
    p = httpx.get(f"{url}/api/telemetry/plant/123/charts/power", headers=_h(tok["viewer"])).json()
    d = httpx.get(f"{url}/api/telemetry/plant/123/charts/daily-energy", headers=_h(tok["viewer"])).json()
    assert e["unit"] == "MWh" and len(e["points"]) > len(p["points"]) >= 90
    assert d["unit"] == "kWh" and len(d["bars"]) == 31
    # the 31 local days hold exactly the plant's ledger over the same range
    ledger = _ledger_kwh(ctx, _series(ctx, 123, "energy_total"), d["bars"][0]["start"], d["bars"][-1]["end"])
    assert ledger > 0 and sum(b["energy_kwh"] for b in d["bars"]) == pytest.approx(ledger, abs=1e-6)
    summary = httpx.get(f"{url}/api/plants/123", headers=_h(tok["viewer"])).json()["summary"]
    assert summary["daily_energy_kwh"] == pytest.approx(result["aggregates"]["daily_energy_kwh"])
    # the last bar is the plant's local today (with no data yet just after its midnight: 0 = 0)
    today = d["bars"][-1]
    assert today["energy_kwh"] == pytest.approx(summary["daily_energy_kwh"], abs=0.001)


def test_sync_all_with_cron_secret_and_work_order_summary(api):
    url, tok, ctx = api
    assert httpx.post(f"{url}/api/telemetry/sync-all").status_code == 401
    assert httpx.post(f"{url}/api/telemetry/sync-all", headers=_h(tok["viewer"])).status_code == 403
    assert httpx.post(f"{url}/api/telemetry/sync-all", headers=_h("wrong-secret")).status_code == 401
    r = httpx.post(f"{url}/api/telemetry/sync-all", headers=_h("cron-secret-for-tests"))
    assert r.status_code == 202
    job = _wait_job(url, r.json()["jobUrl"], tok["viewer"])
    assert job["status"] == "succeeded" and job["result"]["plantsSynced"] == 2 and not job["result"]["errors"]
    assert job["result"]["totalRecords"] >= 2 * 96
    wo = httpx.get(f"{url}/api/work-orders/456", headers=_h(tok["viewer"])).json()
    cards = [pl["summary"] for pl in wo["plants"]]
    for k in ("daily_energy_kwh", "monthly_energy_mwh", "total_energy_mwh", "current_power_kw"):
        assert wo["summary"][k] == pytest.approx(sum(c[k] for c in cards), abs=1e-6)
    logs = httpx.get(f"{url}/api/sync-logs?status=success&limit=5", headers=_h(tok["viewer"])).json()["logs"]
    assert 0 < len(logs) <= 5 and all(l["status"] == "success" for l in logs)


@pytest.mark.parametrize("path,status,code", [
    ("/api/telemetry/plant/123?hours=0", 400, "invalid_parameter"),
    ("/api/telemetry/plant/123?hours=745", 400, "invalid_parameter"),
    ("/api/telemetry/plant/123?hours=abc", 400, "invalid_parameter"),
    ("/api/telemetry/plant/999", 404, "not_found"),
    ("/api/plants/999", 404, "not_found"),
    ("/api/jobs/nope", 404, "not_found"),
])
def test_errors_have_the_json_shape_and_status(api, path, status, code):
    url, tok, _ = api
    r = httpx.get(url + path, headers=_h(tok["viewer"]))
    assert r.status_code == status
    body = r.json()
    assert set(body) == {"error", "code", "details"} and body["code"] == code


def test_authentication_and_roles(api):
    url, tok, _ = api
    assert httpx.get(f"{url}/api/plants").status_code == 401
    assert httpx.get(f"{url}/api/plants", headers=_h("wl_not-a-token")).status_code == 401
    assert httpx.get(f"{url}/api/plants", headers=_h(tok["viewer"])).status_code == 200
    r = httpx.post(f"{url}/api/telemetry/plant/123/backfill", headers=_h(tok["viewer"]))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    metrics = httpx.get(f"{url}/metrics").text
    assert "wattline_readings_ingested_total" in metrics and "wattline_vendor_calls_total" in metrics
    health = httpx.get(f"{url}/health").json()
    assert health["status"] == "ok" and set(health["databases"]) == {"main", "telemetry"}


def test_jobs_left_running_by_a_stopped_server_are_marked_failed(dbs, tmp_path):
    from sqlalchemy import insert, select

    from wattline.jobs.runner import JobRunner
    from wattline.store.tables import jobs

    ctx = make_ctx(dbs, tmp_path)
    now = clock.now_dt()
    with ctx.dbs.telemetry.begin() as conn:
        conn.execute(insert(jobs), [
            dict(id="a", kind="backfill", status="running", created_at=now, updated_at=now),
            dict(id="b", kind="backfill", status="succeeded", created_at=now, updated_at=now)])
    JobRunner(ctx).fail_expired()  # what a starting server does (api/app.py: recover())
    with ctx.dbs.telemetry.connect() as conn:
        status = dict(conn.execute(select(jobs.c.id, jobs.c.status)).all())
    assert status == {"a": "failed", "b": "succeeded"}


def test_latest_values_are_the_newest_readings(api):
    url, tok, ctx = api
    r = httpx.post(f"{url}/api/telemetry/plant/123/backfill", headers=_h(tok["superadmin"]))
    assert _wait_job(url, r.json()["jobUrl"], tok["viewer"])["status"] == "succeeded"
    latest = httpx.get(f"{url}/api/telemetry/plant/123/latest", headers=_h(tok["viewer"])).json()
    plant = httpx.get(f"{url}/api/plants/123", headers=_h(tok["viewer"])).json()
    assert latest["plantId"] == 123 and plant["latest"] == latest["values"]
    assert {"energy_total", "power"} <= set(latest["values"])
    from sqlalchemy import text

    from wattline.domain.timeutil import iso

    for key, v in latest["values"].items():
        assert v["seriesId"] == _series(ctx, 123, key)
        with ctx.dbs.telemetry.connect() as conn:
            ts, value = conn.execute(text("SELECT ts, value FROM readings WHERE series_id = :s "
                                          "ORDER BY ts DESC LIMIT 1"), {"s": v["seriesId"]}).one()
        assert (v["ts"], v["value"]) == (iso(ts), value)


@pytest.mark.parametrize("path,parameter", [
    ("/api/telemetry/plant/123?hours=abc", "hours"),
    ("/api/telemetry/plant/123/charts/daily-energy?days=367", "days"),
    ("/api/telemetry/plant/0", "plant_id"),
    ("/api/sync-logs?status=bogus", "status"),
    ("/api/jobs?limit=0", "limit"),
    ("/api/energy?asset=a&point=p&period=week&from=0&to=1", "period"),
])
def test_validation_errors_name_the_parameter(api, path, parameter):
    """FastAPI validates the parameters; the answer is a 400 in the error shape whose
    message names the parameter and the rule (never echoing the input)."""
    url, tok, _ = api
    r = httpx.get(url + path, headers=_h(tok["viewer"]))
    body = r.json()
    assert r.status_code == 400 and body["code"] == "invalid_parameter", body
    assert set(body) == {"error", "code", "details"} and f"'{parameter}'" in body["error"]
    assert body["details"]["parameter"] == parameter and body["details"]["errors"][0]["msg"]


def test_openapi_documents_every_answer():
    """Every operation declares its success model and the error shape for its errors;
    FastAPI's default 422 is gone (validation errors are the documented 400), while the
    422 a route answers itself stays documented (the fuzz found it undocumented)."""
    schema = create_app().openapi()
    for method, path in (("post", "/api/composite"), ("patch", "/api/composite/{composite_id}"),
                         ("post", "/api/setup")):
        assert schema["paths"][path][method]["responses"]["422"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"}, (method, path)
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            codes = op["responses"]
            ok = codes.get("200") or codes.get("202")
            assert ok, (method, path)
            if "text/csv" in ok.get("content", {}):  # an export: a documented CSV stream, not a model
                assert ok["content"]["text/csv"]["schema"]["type"] == "string", (method, path)
            else:
                assert "$ref" in str(ok["content"]["application/json"]["schema"]), (method, path)
            # no FastAPI default 422; a route's own refusal (a composite, a connection test) is documented
            assert "422" not in codes or "HTTPValidationError" not in str(codes["422"]), (method, path)
            for code, answer in codes.items():
                if code == "409" and path.startswith("/api/push/"):
                    continue  # the vendor's push contract fixes that body (fronius-push/CONTRACT.md)
                if code.startswith("4"):
                    assert answer["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/ErrorBody"}, (method, path, code)
            if op.get("parameters"):
                assert "400" in codes, (method, path)
            if path.startswith("/api/push/"):  # a vendor's push: its key is in the body (the contract)
                assert "401" in codes, (method, path)
            elif path.startswith("/api/"):
                assert {"401", "403"} <= set(codes), (method, path)
                assert op["security"] == [{"bearer": []}, {"session": []}], (method, path)
    assert schema["paths"]["/api/telemetry/sync-all"]["post"]["responses"]["202"]["headers"]["Location"]

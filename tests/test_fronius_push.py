"""``POST /api/push/fronius`` over real HTTP (uvicorn on loopback): the contract's example
stored in canonical units, 409 for a stored timestamp, one 401 for a wrong key and an
unknown site, null distinct from 0, malformed bodies 400 and nothing written on any
refusal; the route fuzzed from its own schema."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from helpers import make_sqlite
from test_api import Server
from world import make_ctx
from wattline import provisioning
from wattline.api.app import create_app
from wattline.store import push_sites

FIXTURES = Path(__file__).parent / "vendors" / "fixtures" / "fronius-push"
EXAMPLE = json.loads((FIXTURES / "example-request.json").read_text())
SITE, KEY = EXAMPLE["siteId"], EXAMPLE["apiKey"]
TS = 1737439200  # 2025-01-21T06:00:00Z, the example's timestamp


class Site:
    def __init__(self, url: str, ctx, system_id: int):
        self.url, self.ctx, self.system_id = url, ctx, system_id

    def post(self, body, *, raw: bytes | None = None, content_type: str = "application/json") -> httpx.Response:
        data = raw if raw is not None else json.dumps(body).encode()
        return httpx.post(f"{self.url}/api/push/fronius", content=data, headers={"Content-Type": content_type},
                          timeout=10)

    @property
    def series(self) -> dict[str, int]:
        return push_sites.push_site(self.ctx.dbs.main_reader, "fronius", SITE).series

    def readings(self) -> dict[tuple[str, int], float]:
        """(point key, ts) -> stored value, for every reading of the site."""
        by_id = {sid: key for key, sid in self.series.items()}
        with self.ctx.dbs.telemetry.connect() as c:
            rows = c.exec_driver_sql("SELECT series_id, ts, value FROM readings").all()
        return {(by_id[s], int(t)): v for s, t, v in rows if s in by_id}

    def count(self, table: str) -> int:
        with self.ctx.dbs.telemetry.connect() as c:
            return c.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar()

    def raw_payloads(self) -> list[dict]:
        with self.ctx.dbs.telemetry.connect() as c:
            rows = c.exec_driver_sql("SELECT payload FROM raw_events WHERE source = 'fronius-push'").all()
        return [json.loads(r[0]) for r in rows]


def _register(ctx, site_id: str, api_key: str | None, name: str) -> int:
    with ctx.dbs.main.begin() as conn:
        creds = {"api_key": api_key} if api_key else {}
        account = provisioning.add_vendor_account(conn, ctx.settings, "fronius", f"{name} account", creds)
        return provisioning.add_vendor_plant(conn, name, "fronius", site_id, "Australia/Sydney",
                                             vendor_account_id=account)


@pytest.fixture
def site(dbs, tmp_path):
    ctx = make_ctx(dbs, tmp_path)
    system_id = _register(ctx, SITE, KEY, "Fronius home")
    _register(ctx, "fronius-keyless", None, "Fronius polled only")
    with Server(create_app(ctx)) as server:
        yield Site(server.url, ctx, system_id)


def test_the_contract_example_is_stored_in_canonical_units(site):
    r = site.post(EXAMPLE)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["systemId"] == site.system_id
    assert body["timestamp"] == "2025-01-21T06:00:00Z" and body["delaySeconds"] >= 0
    got = site.readings()
    assert got == {
        ("solar_w", TS): 2.5, ("solar_local_w", TS): 1.5, ("solar_remote_w", TS): 1.0,
        ("load_w", TS): 1.8, ("battery_w", TS): 0.7, ("grid_w", TS): 0.0, ("battery_soc", TS): 85.5,
        ("solar_interval_kwh", TS): 0.125, ("load_interval_kwh", TS): 0.09,
        ("battery_charge_interval_kwh", TS): 0.0, ("battery_discharge_interval_kwh", TS): 0.035,
        ("grid_import_interval_kwh", TS): 0.0, ("grid_export_interval_kwh", TS): 0.0,
    }
    assert body["readings"] == len(got) == 13
    # the interval energies are in the ledger: 125 Wh of solar in the interval ending at TS
    with site.ctx.dbs.telemetry.connect() as c:
        delta = c.exec_driver_sql("SELECT delta_milli_wh FROM readings WHERE series_id = ? AND ts = ?"
                                  if site.ctx.dbs.telemetry.dialect.name == "sqlite" else
                                  "SELECT delta_milli_wh FROM readings WHERE series_id = %s AND ts = %s",
                                  (site.series["solar_interval_kwh"], TS)).scalar()
    assert delta == 125_000
    # the newest values are readable at once (the latest-value store the API answers from)
    latest = site.ctx.latest_values.read(site.system_id, [site.series["solar_w"], site.series["battery_soc"]])
    assert {sid: (v.ts, v.value) for sid, v in latest.items()} == {
        site.series["solar_w"]: (TS, 2.5), site.series["battery_soc"]: (TS, 85.5)}
    # the document is kept as a raw event, without its key
    (raw,) = site.raw_payloads()
    assert raw == {k: v for k, v in EXAMPLE.items() if k != "apiKey"}
    assert KEY not in json.dumps(raw)


def test_the_same_timestamp_again_is_409_and_changes_nothing(site):
    assert site.post(EXAMPLE).status_code == 200
    before = (site.readings(), site.count("raw_events"))
    again = {**EXAMPLE, "sequence": "abcd/2", "solarW": 9999}  # other values, same instant
    r = site.post(again)
    assert r.status_code == 409
    body = r.json()
    assert body["success"] is False and body["timestamp"] == "2025-01-21T06:00:00Z" and body["error"]
    r = site.post(EXAMPLE)  # the very same document: 409 too
    assert r.status_code == 409
    assert (site.readings(), site.count("raw_events")) == before


def test_every_authenticated_push_leaves_one_push_session_like_a_poll(site):
    from wattline.store import sessions_repo

    def sessions():
        return sorted(sessions_repo.list_sessions(site.ctx.dbs.telemetry, system_ids=[site.system_id]),
                      key=lambda s: s["id"])

    assert site.post(EXAMPLE).status_code == 200
    (ok,) = sessions()
    assert (ok["cause"], ok["vendor_type"], ok["success"], ok["num_readings"], ok["error"]) == (
        "PUSH", "fronius", True, 13, None)
    with site.ctx.dbs.telemetry.connect() as c:
        raw = c.exec_driver_sql("SELECT DISTINCT raw_event_id FROM readings").scalars().all()
    assert raw == [ok["raw_event_id"]]  # the session links the document its readings came from
    state = sessions_repo.poll_states(site.ctx.dbs.telemetry, [site.system_id])[site.system_id]
    assert state["last_success_ms"] >= ok["started_at_ms"] and state["last_poll_ms"] is None  # no poll bookkeeping
    assert site.post(EXAMPLE).status_code == 409  # refused: a failed session, nothing read
    nothing = {**EXAMPLE, "timestamp": "2025-01-21T06:05:00Z"}
    for k in list(nothing):
        if k not in ("siteId", "apiKey", "timestamp", "sequence") and isinstance(nothing[k], (int, float)):
            nothing[k] = None
    assert site.post(nothing).status_code == 400
    _, dup, empty = sessions()
    assert (dup["cause"], dup["success"], dup["vendor_error_code"], dup["num_readings"]) == ("PUSH", False, "conflict", 0)
    assert (empty["success"], empty["vendor_error_code"], empty["num_readings"]) == (False, "invalid_request", 0)
    assert site.post({**EXAMPLE, "apiKey": "wrong-key"}).status_code == 401  # no trusted system: no session
    assert len(sessions()) == 3
    assert sessions_repo.poll_states(site.ctx.dbs.telemetry, [site.system_id])[site.system_id][
        "consecutive_failures"] == 0


def test_a_wrong_key_or_an_unknown_site_is_one_401_and_nothing_is_written(site):
    for change in ({"apiKey": "wrong-key"}, {"siteId": "no-such-site"}, {"apiKey": KEY + "x"},
                   {"siteId": "fronius-keyless", "apiKey": "anything"}):  # a site without a push key
        r = site.post({**EXAMPLE, **change})
        assert r.status_code == 401
        assert r.json() == {"error": "unknown site or wrong key", "code": "unauthorized", "details": None}
        assert KEY not in r.text
    assert site.count("readings") == 0 and site.count("raw_events") == 0


def test_null_is_no_reading_and_zero_is_a_reading_of_zero(site):
    doc = {**EXAMPLE, "solarW": None, "solarLocalW": None, "solarRemoteW": 0, "gridW": None, "loadW": 0,
           "batterySOC": None, "batteryW": 0, "solarWhInterval": None, "loadWhInterval": 0}
    for k in ("gridInWhInterval", "gridOutWhInterval", "batteryInWhInterval", "batteryOutWhInterval"):
        del doc[k]  # absent is "not measured" too
    r = site.post(doc)
    assert r.status_code == 200, r.text
    assert site.readings() == {("solar_remote_w", TS): 0.0, ("load_w", TS): 0.0, ("battery_w", TS): 0.0,
                               ("load_interval_kwh", TS): 0.0}
    assert r.json()["readings"] == 4


def test_solar_is_the_sum_of_its_parts_when_only_they_are_given(site):
    doc = {**EXAMPLE, "solarW": None}
    assert site.post(doc).status_code == 200
    assert site.readings()[("solar_w", TS)] == 2.5


MALFORMED = [
    (None, b"{not json", None),
    (None, b"[1, 2]", None),
    ({k: v for k, v in EXAMPLE.items() if k != "siteId"}, None, "siteId"),
    ({k: v for k, v in EXAMPLE.items() if k != "apiKey"}, None, "apiKey"),
    ({k: v for k, v in EXAMPLE.items() if k != "timestamp"}, None, "timestamp"),
    ({**EXAMPLE, "timestamp": "2025-01-21 06:00:00"}, None, "timestamp"),  # no offset
    ({**EXAMPLE, "timestamp": "yesterday"}, None, "timestamp"),
    ({**EXAMPLE, "solarW": "2500"}, None, "solarW"),
    ({**EXAMPLE, "gridW": True}, None, "gridW"),
    ({**EXAMPLE, "batterySOC": 100.5}, None, "batterySOC"),
    ({**EXAMPLE, "loadW": -5}, None, "loadW"),
    ({**EXAMPLE, "solarWhInterval": -1}, None, "solarWhInterval"),
    ({**EXAMPLE, "siteId": ""}, None, "siteId"),
    ({**EXAMPLE, "surprise": 1}, None, "surprise"),
]


def test_a_malformed_body_is_400_in_the_error_shape_and_writes_nothing(site):
    for body, raw, field in MALFORMED:
        r = site.post(body, raw=raw)
        assert r.status_code == 400, (body, raw, r.text)
        out = r.json()
        assert set(out) == {"error", "code", "details"} and out["code"] == "invalid_request"
        if field is not None:
            assert any(e["loc"][-1] == field for e in out["details"]["errors"]), out
        assert KEY not in r.text  # the input is never echoed
    assert site.count("readings") == 0 and site.count("raw_events") == 0


def test_a_document_that_measures_nothing_is_400(site):
    doc = {k: (None if k.endswith(("W", "Interval", "SOC")) else v) for k, v in EXAMPLE.items()}
    r = site.post(doc)
    assert r.status_code == 400 and r.json()["code"] == "invalid_request"
    assert site.count("raw_events") == 0


def test_successive_pushes_build_the_series(site):
    for i in range(3):
        doc = {**EXAMPLE, "timestamp": f"2025-01-21T06:0{i}:00Z", "sequence": f"abcd/{i}", "solarW": 1000 * i}
        assert site.post(doc).status_code == 200
    got = site.readings()
    assert [got[("solar_w", TS + 60 * i)] for i in range(3)] == [0.0, 1.0, 2.0]


# -- fuzzing the route from its own schema --------------------------------------------------

SCHEMA = schemathesis.openapi.from_dict(create_app().openapi()).include(path="/api/push/fronius")


@pytest.fixture(scope="module")
def served(tmp_path_factory):

    tmp = tmp_path_factory.mktemp("fronius-fuzz")
    dbs = make_sqlite(tmp)
    ctx = make_ctx(dbs, tmp)
    _register(ctx, SITE, KEY, "Fronius home")
    with Server(create_app(ctx)) as server:
        yield server.url
    dbs.dispose()


@SCHEMA.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_route_answers_only_documented_statuses(served, case):
    # no bearer token: the document carries its own credentials. A schema-valid document
    # rightly gets 401 (its key is not the site's), so positive acceptance is not expected;
    # and a route without bearer auth is not "ignoring" it.
    case.call_and_validate(base_url=served, excluded_checks=[
        schemathesis.checks.positive_data_acceptance, schemathesis.checks.ignored_auth,
        schemathesis.checks.use_after_free, schemathesis.checks.ensure_resource_availability])

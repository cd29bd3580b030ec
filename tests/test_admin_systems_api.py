"""The admin and setup API (seed 003): system settings, removal that keeps the data,
point edits that keep series and history, users and roles, shares that change what
/api/data/systems answers, and connection tests and setup against the emulated
Solarman cloud over real HTTP, with the secret in no answer and no log line."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from helpers import batch, session_headers
from world import CLOUD_NOW, SECRET, WorldPlant, cloud_config
from wattline import clock, system_admin
from wattline.api.app import create_app
from wattline.config import Settings
from wattline.context import AppContext
from wattline.pipeline import Pipeline
from wattline.security.sessions import issue_session
from wattline.security.users import create_user, get_user_principal
from wattline.simulator.vendor_cloud.config import DEFAULT_CREDENTIALS
from wattline.simulator.vendor_cloud.server import BackgroundCloud
from wattline.store import registry, systems_repo
from wattline.store.tables import (
    assets, group_members, points, readings, system_poll_state, system_shares, systems, vendor_accounts,
)

PASSWORD = "a long test password"
CREDS = DEFAULT_CREDENTIALS["solarman"]
SITE = "71000001"


class AppSettings(Settings):
    vendor_base_url: str | None = "http://127.0.0.1:9"  # set to the emulation's URL by the tests that use it


def make(dbs, tmp_path):
    settings = AppSettings(data_dir=tmp_path / "data", secret_key=SECRET,
                           main_url=dbs.main.url.render_as_string(hide_password=False),
                           telemetry_url=dbs.telemetry.url.render_as_string(hide_password=False))
    ctx = AppContext(settings, dbs, Pipeline(dbs.telemetry, dbs.main_reader))
    cookies = {}
    with dbs.main.begin() as conn:
        for name, role in (("alice", "user"), ("carol", "user"), ("bob", "viewer"), ("root", "admin")):
            create_user(conn, name, PASSWORD, role)
            cookies[name] = session_headers(settings.encryption_key,
                                            issue_session(settings.encryption_key, get_user_principal(conn, name)))
    return ctx, cookies


@pytest.fixture
def api(sqlite_dbs, tmp_path):
    ctx, cookies = make(sqlite_dbs, tmp_path)
    with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
        client.as_ = cookies
        yield ctx, client


def ids_seen(client, who) -> list[int]:
    r = client.get("/api/data/systems", headers=client.as_[who])
    assert r.status_code == 200
    return [s["id"] for s in r.json()["systems"]]


def add(ctx, name, owner, site, **kw) -> int:
    with ctx.dbs.main.begin() as conn:
        return system_admin.add_system(conn, ctx.settings, name, "solarman", site, owner, credentials=CREDS, **kw)


def test_settings_freshness_and_refused_settings(api):
    ctx, client = api
    root = client.as_["root"]
    a = add(ctx, "Home", "alice", "1")
    b = add(ctx, "Shed", "alice", "2")
    with ctx.dbs.telemetry.begin() as conn:  # a successful poll 125 s ago
        conn.execute(insert(system_poll_state).values(system_id=a, consecutive_failures=0,
                                                      last_success_ms=int(clock.now() * 1000) - 125_000))
    rows = {s["id"]: s for s in client.get("/api/admin/systems", headers=root).json()["systems"]}
    assert 125 <= rows[a]["freshnessS"] <= 135 and rows[a]["lastSuccessAt"] is not None
    assert rows[b]["freshnessS"] is None and rows[b]["points"] == rows[a]["points"] > 0
    assert (rows[a]["owner"], rows[a]["alias"], rows[a]["status"], rows[a]["vendorType"]) == (
        "alice", "home", "active", "solarman")

    url = f"/api/admin/systems/{a}/settings"
    r = client.post(url, headers=root, json={"displayName": "Home PV", "alias": "home-pv",
                                             "displayTimezone": "Australia/Melbourne", "status": "paused"})
    assert r.status_code == 200, r.text
    assert r.json()["system"] == {"id": a, "displayName": "Home PV", "alias": "home-pv",
                                  "displayTimezone": "Australia/Melbourne", "status": "paused"}
    assert client.post(url, headers=root, json={"alias": "home-pv"}).status_code == 200  # again: no change
    before = client.get(f"/api/data/systems/{a}", headers=root).json()
    for body, status, code in (({"alias": "shed"}, 409, "conflict"),  # alice's other system has it
                               ({"alias": "Not OK"}, 400, "invalid_request"),
                               ({"displayTimezone": "Mars/Olympus"}, 400, "invalid_request"),
                               ({"status": "error"}, 400, "invalid_parameter"),
                               ({"status": "paused", "unknown": 1}, 400, None),
                               ({}, 400, "invalid_request"), ({"displayName": None}, 400, "invalid_request")):
        r = client.post(url, headers=root, json=body)
        assert r.status_code == status, (body, r.text)
        assert code is None or r.json()["code"] in (code, "invalid_request"), (body, r.json())
    assert client.get(f"/api/data/systems/{a}", headers=root).json() == before  # nothing written
    # an alias is unique per owner: carol may use "home-pv" too
    c = add(ctx, "Carol's", "carol", "3")
    assert client.post(f"/api/admin/systems/{c}/settings", headers=root, json={"alias": "home-pv"}).status_code == 200
    assert client.post(url, headers=client.as_["alice"], json={"alias": "x"}).status_code == 403
    assert client.post("/api/admin/systems/999/settings", headers=root, json={"alias": "x"}).status_code == 404


def test_delete_keeps_the_telemetry_and_frees_the_alias(api):
    ctx, client = api
    root = client.as_["root"]
    a = add(ctx, "Home", "alice", "1")
    b = add(ctx, "Shed", "alice", "2")
    with ctx.dbs.main.begin() as conn:
        system_admin.share_system(conn, a, "bob", "alice")
        comp = system_admin.add_composite(conn, "all", "All", [a, b])
        sid = registry.point(conn, a, "power")["id"]
    ctx.pipeline.ingest(batch(sid, [CLOUD_NOW - 600, CLOUD_NOW - 300], [1.0, 2.0]))

    r = client.post(f"/api/admin/systems/{a}/delete", headers=root)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["alreadyRemoved"], body["sharesRemoved"], body["compositeMembershipsRemoved"],
            body["vendorAccountRemoved"]) == (False, 1, 1, True)
    assert body["pointsKept"] > 0
    with ctx.dbs.main.connect() as conn:
        assert conn.execute(select(systems).where(systems.c.asset_id == a)).first() is None
        assert conn.execute(select(system_shares).where(system_shares.c.system_id == a)).first() is None
        assert [m for (m,) in conn.execute(select(group_members.c.asset_id).where(group_members.c.group_id == comp))] == [b]
        asset = conn.execute(select(assets).where(assets.c.id == a)).mappings().one()
        assert asset["name"].startswith(f"removed/{a}/") and asset["attributes"]["removed"]["by"] == "root"
        assert asset["attributes"]["removed"]["alias"] == "home"
        assert conn.execute(select(points.c.id).where(points.c.id == sid, points.c.active.is_(False))).first()
        assert conn.execute(select(func.count()).select_from(vendor_accounts)).scalar() == 1  # b's
        assert systems_repo.system(conn, b)["is_default"]  # the default moved to the remaining system
    with ctx.dbs.telemetry.connect() as conn:
        assert conn.execute(select(func.count()).where(readings.c.series_id == sid)).scalar() == 2
    assert client.get(f"/api/data/systems/{a}", headers=root).status_code == 404
    assert a not in ids_seen(client, "alice") and ids_seen(client, "bob") == []
    again = client.post(f"/api/admin/systems/{a}/delete", headers=root)
    assert again.status_code == 200 and again.json()["alreadyRemoved"] is True
    # the alias (and the asset and account names) are free again
    assert add(ctx, "Home", "alice", "1") != a
    assert client.post("/api/admin/systems/999/delete", headers=root).status_code == 404
    assert client.post(f"/api/admin/systems/{b}/delete", headers=client.as_["alice"]).status_code == 403


def test_point_edits_keep_the_series_and_its_history(api):
    ctx, client = api
    root = client.as_["root"]
    a = add(ctx, "Home", "alice", "1")
    url = f"/api/admin/systems/{a}/points"
    before = {p["key"]: p for p in client.get(url, headers=root).json()["points"]}
    sid = before["power"]["seriesId"]
    ctx.pipeline.ingest(batch(sid, [CLOUD_NOW - 600, CLOUD_NOW - 300], [10.0, 20.0]))
    r = client.post(url, headers=root, json={"key": "power", "label": "Inverter AC", "displayOrder": 1,
                                              "visible": False, "transform": {"scale": 0.5, "sign": -1},
                                              "effectiveFrom": "2025-11-22T11:00:00Z"})
    assert r.status_code == 200, r.text
    p = r.json()["point"]
    assert (p["seriesId"], p["label"], p["displayOrder"], p["visible"], p["active"]) == (sid, "Inverter AC", 1, False, True)
    assert p["transforms"] == [{"effectiveFrom": CLOUD_NOW - 3600, "transform": {"scale": 0.5, "sign": -1}}]
    assert r.json()["points"][0]["key"] == "power"  # by display order
    with ctx.dbs.telemetry.connect() as conn:
        values = [v for (v,) in conn.execute(select(readings.c.value).where(readings.c.series_id == sid)
                                             .order_by(readings.c.ts))]
    assert values == [10.0, 20.0]  # stored readings stay as they arrived
    for body, status in (({"key": "nope", "label": "x"}, 404), ({"key": "power", "transform": {"scale": 2}}, 400),
                         ({"key": "power", "transform": {"scale": "x"}, "effectiveFrom": 1}, 400),
                         ({"key": "power", "unit": "kW"}, 400), ({"key": "power"}, 400),
                         ({"key": "power", "effectiveFrom": "yesterday", "transform": {"scale": 1}}, 400),
                         ({"key": "power", "effectiveFrom": 10**20, "transform": {"scale": 1}}, 400)):
        assert client.post(url, headers=root, json=body).status_code == status, body
    after = client.get(url, headers=root).json()["points"]
    assert next(q for q in after if q["key"] == "power") == p  # the refused edits wrote nothing


def test_users_and_roles(api):
    ctx, client = api
    root = client.as_["root"]
    add(ctx, "Home", "alice", "1")
    users = {u["username"]: u for u in client.get("/api/admin/users", headers=root).json()["users"]}
    assert (users["alice"]["role"], users["alice"]["systems"], users["bob"]["role"]) == ("user", 1, "viewer")
    assert all("password" not in str(u).lower() for u in users.values())
    r = client.post("/api/admin/users", headers=root, json={"username": "dora", "password": PASSWORD, "role": "viewer"})
    assert r.status_code == 200 and r.json()["user"]["role"] == "viewer"
    assert PASSWORD not in r.text
    assert client.post("/api/admin/users", headers=root,
                       json={"username": "dora", "password": PASSWORD}).status_code == 409
    for body in ({"username": "eve", "password": "s3cr7"}, {"username": "eve", "password": PASSWORD, "role": "superadmin"},
                 {"username": " ", "password": PASSWORD}):
        r = client.post("/api/admin/users", headers=root, json=body)
        assert r.status_code == 400 and "s3cr7" not in r.text, body
    assert "eve" not in {u["username"] for u in client.get("/api/admin/users", headers=root).json()["users"]}

    role = "/api/admin/users/{}/role"
    assert client.post(role.format("dora"), headers=root, json={"role": "user"}).json()["changed"] is True
    assert client.post(role.format("dora"), headers=root, json={"role": "user"}).json()["changed"] is False
    assert client.post(role.format("alice"), headers=root, json={"role": "viewer"}).status_code == 400  # owns one
    assert client.post(role.format("root"), headers=root, json={"role": "user"}).status_code == 400  # oneself
    assert client.post(role.format("nobody"), headers=root, json={"role": "user"}).status_code == 404
    # a role change applies to an open session at once
    assert client.get("/api/admin/users", headers=client.as_["carol"]).status_code == 403
    assert client.post(role.format("carol"), headers=root, json={"role": "admin"}).status_code == 200
    assert client.get("/api/admin/users", headers=client.as_["carol"]).status_code == 200


def test_shares_grant_and_revoke_what_data_systems_answers(api):
    ctx, client = api
    a = add(ctx, "Home", "alice", "1")
    c = add(ctx, "Carol's", "carol", "2")
    alice, bob = client.as_["alice"], client.as_["bob"]
    url = f"/api/data/systems/{a}/shares"
    assert ids_seen(client, "bob") == []
    r = client.post(url, headers=alice, json={"username": "bob"})
    assert r.status_code == 200 and r.json() == {"success": True, "changed": True, "systemId": a, "sharedWith": ["bob"]}
    assert client.post(url, headers=alice, json={"username": "bob"}).json()["changed"] is False  # idempotent
    assert ids_seen(client, "bob") == [a]
    assert client.get(f"/api/data/systems/{a}", headers=bob).status_code == 200
    # a share reads, never shares on; a stranger's system stays hidden
    assert client.post(url, headers=bob, json={"username": "carol"}).status_code == 403
    assert client.post(f"/api/data/systems/{c}/shares", headers=alice, json={"username": "bob"}).status_code == 404
    assert client.post(url, headers=alice, json={"username": "nobody"}).status_code == 400
    assert client.post(url, headers=alice, json={"username": "alice"}).status_code == 400  # the owner
    # an admin shares too
    assert client.post(f"/api/data/systems/{c}/shares", headers=client.as_["root"], json={"username": "bob"}).status_code == 200
    assert ids_seen(client, "bob") == [a, c]
    r = client.delete(f"{url}/bob", headers=alice)
    assert r.status_code == 200 and r.json()["changed"] is True and r.json()["sharedWith"] == []
    assert client.delete(f"{url}/bob", headers=alice).json()["changed"] is False
    assert ids_seen(client, "bob") == [c]
    assert client.get(f"/api/data/systems/{a}", headers=bob).status_code == 404


def test_connection_tests_and_setup_against_the_emulation(sqlite_dbs, tmp_path, set_clock, caplog, capfd):
    set_clock(CLOUD_NOW)
    caplog.set_level(logging.DEBUG)
    ctx, cookies = make(sqlite_dbs, tmp_path)
    plant = WorldPlant(0, "solarman", SITE, "UTC", CLOUD_NOW - 86400)
    secrets = (CREDS["app_secret"], CREDS["password"])
    answers = []
    with BackgroundCloud(cloud_config([plant])) as cloud, \
            TestClient(create_app(ctx), raise_server_exceptions=False) as client:
        ctx.settings.vendor_base_url = cloud.base_url
        alice = cookies["alice"]

        def post(path, body, who=alice):
            r = client.post(path, headers=who, json=body)
            answers.append(r.text)
            return r

        good = post("/api/test-connection", {"vendorType": "solarman", "siteId": SITE, "credentials": CREDS})
        assert good.status_code == 200, good.text
        g = good.json()
        assert g["success"] is True and g["error"] is None
        assert {"power", "energy_total"} <= set(g["latest"]) and g["latest"]["energy_total"] > 0
        assert g["systemInfo"]["siteId"] == SITE and g["systemInfo"]["lastReadingAt"] <= CLOUD_NOW
        assert post("/api/test-connection", {"vendorType": "solarman", "credentials": CREDS}).json()["success"]

        wrong = post("/api/test-connection", {"vendorType": "solarman", "siteId": SITE,
                                              "credentials": {**CREDS, "password": "not-the-password"}})
        assert wrong.status_code == 200 and wrong.json()["success"] is False
        assert wrong.json()["errorCode"] == "auth" and "refused" in wrong.json()["error"]
        assert "not-the-password" not in wrong.text
        shape = post("/api/test-connection", {"vendorType": "solarman", "credentials": {"app_id": "1", "password": "p-x-y"}})
        assert shape.status_code == 400 and shape.json()["code"] == "invalid_credentials"
        assert "app_secret" in shape.text and "p-x-y" not in shape.text
        unknown = post("/api/test-connection", {"vendorType": "acme", "credentials": {}})
        assert unknown.status_code == 400 and unknown.json()["code"] == "unknown_vendor"
        assert post("/api/test-connection", {"vendorType": "solarman", "credentials": CREDS},
                    who=cookies["bob"]).status_code == 403  # a viewer owns nothing, tests nothing

        # setup: refused credentials write nothing; good ones make alice's system
        bad = post("/api/setup", {"vendorType": "solarman", "siteId": SITE, "displayName": "Home",
                                  "credentials": {**CREDS, "password": "not-the-password"}})
        assert bad.status_code == 422 and bad.json()["code"] == "connection_failed"
        with ctx.dbs.main.connect() as conn:
            assert conn.execute(select(func.count()).select_from(systems)).scalar() == 0
            assert conn.execute(select(func.count()).select_from(vendor_accounts)).scalar() == 0
        made = post("/api/setup", {"vendorType": "solarman", "siteId": SITE, "displayName": "Home",
                                   "timezone": "Europe/Berlin", "credentials": CREDS})
        assert made.status_code == 200, made.text
        m = made.json()
        assert (m["owner"], m["alias"], m["vendorSiteId"], m["timezone"], m["isDefault"]) == (
            "alice", "home", SITE, "Europe/Berlin", True)
        assert "power" in {p["key"] for p in m["points"]}
        assert post("/api/setup", {"vendorType": "solarman", "siteId": SITE, "displayName": "Home",
                                   "credentials": CREDS}).status_code == 409
        sid = m["systemId"]
        assert sid in ids_seen_with(client, alice)
        with ctx.dbs.main.connect() as conn:
            stored = conn.execute(select(vendor_accounts.c.credentials_encrypted, vendor_accounts.c.base_url)).one()
        assert stored.base_url == cloud.base_url
        assert all(s.encode() not in stored.credentials_encrypted for s in secrets)

        # the new system polls, and the admin list shows it fresh
        poll = client.post("/api/cron/poll?force=true", headers=cookies["root"])
        assert poll.status_code == 200 and poll.json()["succeeded"] == 1, poll.text
        row = next(s for s in client.get("/api/admin/systems", headers=cookies["root"]).json()["systems"]
                   if s["id"] == sid)
        assert row["freshnessS"] is not None and 0 <= row["freshnessS"] < 60 and row["status"] == "active"
        answers.append(client.get(f"/api/admin/systems/{sid}/points", headers=cookies["root"]).text)
        answers.append(client.get("/api/admin/systems", headers=cookies["root"]).text)
    out, err = capfd.readouterr()
    logged = "\n".join([out, err, caplog.text] + [r.getMessage() for r in caplog.records])
    for s in (*secrets, "not-the-password"):
        assert all(s not in a for a in answers), s
        assert s not in logged, s


def ids_seen_with(client, headers) -> list[int]:
    return [s["id"] for s in client.get("/api/data/systems", headers=headers).json()["systems"]]


def test_settings_and_removal_on_each_backend(dbs, tmp_path):
    """The store side of settings and removal, on SQLite and PostgreSQL."""
    ctx, _ = make(dbs, tmp_path)
    a = add(ctx, "Home", "alice", "1")
    b = add(ctx, "Shed", "alice", "2")
    with dbs.main.begin() as conn:
        system_admin.share_system(conn, a, "bob", "alice")
        system_admin.add_composite(conn, "both", "Both", [a, b])
        s = system_admin.update_settings(conn, a, display_name="Home PV", alias="home-pv",
                                         timezone="Europe/Berlin", status="paused")
        assert (s["display_name"], s["alias"], s["timezone"], s["status"]) == ("Home PV", "home-pv", "Europe/Berlin",
                                                                              "paused")
    with pytest.raises(system_admin.RegistryError, match="already has"):
        with dbs.main.begin() as conn:
            system_admin.update_settings(conn, b, alias="home-pv", display_name="Renamed")
    with dbs.main.begin() as conn:
        assert systems_repo.system(conn, b)["display_name"] == "Shed"  # the refused change wrote nothing
        out = system_admin.delete_system(conn, a, by="root", now_s=CLOUD_NOW)
        assert (out["shares"], out["composite_memberships"], out["vendor_account_removed"]) == (1, 1, True)
        assert systems_repo.removed_attributes(conn, a)["alias"] == "home-pv"
        assert systems_repo.system(conn, a) is None and systems_repo.system(conn, b)["is_default"]
        assert system_admin.set_user_role(conn, "bob", "user") is True
    assert add(ctx, "Home", "alice", "1") > b


def test_the_schema_offers_only_what_the_routes_take():
    """The admin fuzz sent schema-valid bodies these routes rightly refuse: the schema now
    says so (no null for a setting or a point field, the password policy's length, a
    controller named in an HTTP status body), and a null is still a clean 400."""
    schema = create_app().openapi()
    parts = schema["components"]["schemas"]
    for model, field in (("SettingsIn", "status"), ("SettingsIn", "alias"), ("PointEditIn", "visible"),
                         ("PointEditIn", "displayOrder")):
        assert "null" not in str(parts[model]["properties"][field]), (model, field)
    assert parts["UserCreateIn"]["properties"]["password"]["minLength"] == 8
    for route in ("status", "heartbeat"):
        body = schema["paths"][f"/api/power-analytics/{route}"]["post"]["requestBody"]["content"]
        one = body["application/json"]["schema"]["oneOf"][0]
        assert "esp32_name" in one["required"] and "null" not in str(one["properties"]["esp32_name"])
    from wattline.api.routes.admin_systems import PointEditIn, SettingsIn

    # null still validates (the route answers 400 "cannot be null"), never a TypeError (500)
    assert SettingsIn.model_validate({"alias": None}).alias is None
    assert PointEditIn.model_validate({"key": "power", "label": None}).label is None

"""Systems (seed 003): the CLI as a user runs it, aliases and defaults, default points,
refused credentials, shares, composites, point edits, and who may read what over HTTP."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from helpers import session_headers
from world import make_ctx
from wattline import system_admin
from wattline.api.app import create_app
from wattline.cli import app as cli_app
from wattline.config import Settings
from wattline.context import open_context
from wattline.security.principal import Principal
from wattline.security.sessions import COOKIE_NAME, issue_session
from wattline.security.system_access import can_read_system, can_write_system
from wattline.security.users import create_user, get_user_principal
from wattline.simulator.vendor_cloud.config import DEFAULT_CREDENTIALS
from wattline.sources.vendors.registry import get_adapter_class
from wattline.store import systems_repo
from wattline.store.tables import assets, group_members, groups, points, system_shares, systems, vendor_accounts

runner = CliRunner()
PASSWORD = "a long test password"
SOLARMAN = [f"--credential={k}={v}" for k, v in DEFAULT_CREDENTIALS["solarman"].items()]


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    for var in ("WATTLINE_MAIN_URL", "WATTLINE_TELEMETRY_URL", "WATTLINE_SECRET_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WATTLINE_DATA_DIR", str(tmp_path / "data"))
    ctx = open_context(Settings(data_dir=tmp_path / "data"))
    with ctx.dbs.main.begin() as conn:
        for name, role in (("alice", "user"), ("carol", "user"), ("bob", "viewer"), ("root", "admin")):
            create_user(conn, name, PASSWORD, role)
    yield ctx
    ctx.close()


def cli(*args: str):
    return runner.invoke(cli_app, list(args))


def counts(ctx) -> dict[str, int]:
    with ctx.dbs.main.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar()
                for t in (assets, points, systems, vendor_accounts, system_shares, groups, group_members)}


def test_cli_adds_lists_and_shares_systems_with_their_default_points(data_dir):
    ctx = data_dir
    r = cli("systems", "add", "Home PV", "--vendor", "solarman", "--site-id", "64786338", "--owner", "alice",
            "--timezone", "Asia/Kolkata", *SOLARMAN)
    assert r.exit_code == 0, r.output
    with ctx.dbs.main.connect() as conn:
        first = systems_repo.list_systems(conn)[0]
        pts = systems_repo.system_points(conn, first["id"])
        stored = conn.execute(select(vendor_accounts.c.credentials_encrypted)).scalar()
    assert (first["display_name"], first["alias"], first["owner"], first["vendor_type"], first["vendor_site_id"],
            first["timezone"], first["status"], first["is_default"]) == (
        "Home PV", "home-pv", "alice", "solarman", "64786338", "Asia/Kolkata", "active", True)
    # the adapter's declared points, labelled and ordered, collecting and visible
    assert [p["key"] for p in pts] == [p.key for p in get_adapter_class("solarman").points]
    assert all(p["label"] and p["visible"] and p["active"] for p in pts)
    assert [p["display_order"] for p in pts] == sorted(p["display_order"] for p in pts)
    assert next(p for p in pts if p["key"] == "power")["subsystem"] == "solar"
    # credentials encrypted: no value in clear in the row
    assert DEFAULT_CREDENTIALS["solarman"]["app_secret"].encode() not in stored

    # a second system of alice is not her default; the same alias again is refused
    assert cli("systems", "add", "Roof", "--vendor", "sungrow", "--site-id", "1129147", "--owner", "alice",
               *[f"--credential={k}={v}" for k, v in DEFAULT_CREDENTIALS["sungrow"].items()]).exit_code == 0
    before = counts(ctx)
    r = cli("systems", "add", "Home PV", "--vendor", "solarman", "--site-id", "999", "--owner", "alice", *SOLARMAN)
    assert r.exit_code == 2 and "already has a system with alias 'home-pv'" in r.output
    assert counts(ctx) == before
    # ...but another owner may use it, and --default moves carol's default
    assert cli("systems", "add", "Home PV", "--vendor", "solarman", "--site-id", "64786338", "--owner", "carol",
               *SOLARMAN).exit_code == 0
    assert cli("systems", "add", "Shed", "--vendor", "solarman", "--site-id", "5", "--owner", "carol",
               "--default", *SOLARMAN).exit_code == 0
    with ctx.dbs.main.connect() as conn:
        rows = {(s["owner"], s["alias"]): s for s in systems_repo.list_systems(conn)}
    assert [k for k, s in rows.items() if s["is_default"]] == [("alice", "home-pv"), ("carol", "shed")]

    listed = cli("systems", "list", "--format", "json")
    assert listed.exit_code == 0 and DEFAULT_CREDENTIALS["solarman"]["password"] not in listed.output
    assert [(s["owner"], s["alias"], s["status"], s["is_default"]) for s in json.loads(listed.output)] == [
        ("alice", "home-pv", "active", True), ("alice", "roof", "active", False),
        ("carol", "home-pv", "active", False), ("carol", "shed", "active", True)]
    assert cli("systems", "list").exit_code == 0

    sid = str(first["id"])
    r = cli("systems", "share", sid, "--with", "bob")
    assert r.exit_code == 0 and "shared with 'bob'" in r.output
    assert "already shared" in cli("systems", "share", sid, "--with", "bob").output  # idempotent
    with ctx.dbs.main.connect() as conn:
        assert systems_repo.system(conn, first["id"])["shared_with"] == {"bob"}
    assert "revoked" in cli("systems", "share", sid, "--with", "bob", "--revoke").output
    assert cli("systems", "share", sid, "--with", "nobody").exit_code == 2
    with ctx.dbs.main.connect() as conn:
        assert systems_repo.system(conn, first["id"])["shared_with"] == frozenset()

    # an admin edits a point: its series (and so its history) stays; pausing stops polling
    r = cli("systems", "edit-point", sid, "power", "--label", "PV", "--order", "1", "--hidden", "--scale", "0.5",
            "--effective-from", "2025-01-01T00:00:00Z")
    assert r.exit_code == 0, r.output
    with ctx.dbs.main.connect() as conn:
        power = next(p for p in systems_repo.system_points(conn, first["id"]) if p["key"] == "power")
        assert systems_repo.transform_versions(conn, [power["id"]]) == {power["id"]: [(1735689600, {"scale": 0.5})]}
    assert (power["id"], power["label"], power["display_order"], power["visible"]) == (
        next(p["id"] for p in pts if p["key"] == "power"), "PV", 1, False)
    assert cli("systems", "edit-point", sid, "power", "--scale", "2").exit_code == 2  # no effective time
    assert "no point 'nope'" in cli("systems", "edit-point", sid, "nope", "--label", "x").output
    assert cli("systems", "points", sid).exit_code == 0
    assert cli("systems", "set-status", sid, "paused").exit_code == 0
    assert "status must be" in cli("systems", "set-status", sid, "error").output
    from wattline.store.systems_repo import pollable_systems
    assert first["id"] not in {s.plant_id for s in pollable_systems(ctx.dbs.main_reader)}
    assert cli("systems", "set-status", sid, "active").exit_code == 0
    assert first["id"] in {s.plant_id for s in pollable_systems(ctx.dbs.main_reader)}

    r = cli("composites", "add", "all-roofs", "--name", "All roofs", "--members", f"{sid},{rows[('alice', 'roof')]['id']}")
    assert r.exit_code == 0, r.output
    with ctx.dbs.main.connect() as conn:
        g = conn.execute(select(groups).where(groups.c.kind == "composite")).mappings().one()
        members = {m for (m,) in conn.execute(select(group_members.c.asset_id).where(group_members.c.group_id == g["id"]))}
    assert (g["slug"], g["name"]) == ("all-roofs", "All roofs") and members == {first["id"], rows[("alice", "roof")]["id"]}
    before = counts(ctx)
    assert "no system with id 999" in cli("composites", "add", "x", "--name", "X", "--members", f"{sid},999").output
    assert "already exists" in cli("composites", "add", "all-roofs", "--name", "Again", "--members", sid).output
    assert counts(ctx) == before


@pytest.mark.parametrize("args, message", [
    (["--credential=app_id=1", "--credential=email=a@b.c", "--credential=password=x"], "app_secret"),
    ([*SOLARMAN, "--credential=colour=blue"], "colour"),
    (["--credential", "app_id"], "KEY=VALUE"),
])
def test_refused_credentials_say_why_and_write_nothing(data_dir, args, message):
    before = counts(data_dir)
    r = cli("systems", "add", "Home PV", "--vendor", "solarman", "--site-id", "1", "--owner", "alice", *args)
    assert r.exit_code == 2 and message in r.output
    assert "wattline-demo" not in r.output  # no credential value echoed
    assert counts(data_dir) == before


@pytest.mark.parametrize("extra, message", [
    (["--owner", "bob"], "viewer"),
    (["--owner", "ghost"], "unknown user 'ghost'"),
    (["--owner", "alice", "--alias", "Not URL safe!"], "alias"),
    (["--owner", "alice", "--timezone", "Mars/Olympus"], "Mars/Olympus"),
    (["--owner", "alice", "--vendor", "nosuchvendor"], "nosuchvendor"),
])
def test_refused_systems_write_nothing(data_dir, extra, message):
    before = counts(data_dir)
    args = ["systems", "add", "Home PV", "--site-id", "1", *SOLARMAN, *extra]
    if "--vendor" not in extra:
        args += ["--vendor", "solarman"]
    r = cli(*args)
    assert r.exit_code == 2 and message in r.output, r.output
    assert counts(data_dir) == before


def test_aliases_defaults_and_point_edits_on_each_backend(dbs, tmp_path):
    ctx = make_ctx(dbs, tmp_path)
    with dbs.main.begin() as conn:
        create_user(conn, "alice", PASSWORD, "user")
        a = system_admin.add_system(conn, ctx.settings, "Home", "solarman", "1", "alice",
                                    credentials=DEFAULT_CREDENTIALS["solarman"])
        b = system_admin.add_system(conn, ctx.settings, "Barn", "solarman", "2", "alice",
                                    credentials=DEFAULT_CREDENTIALS["solarman"], make_default=True)
    with dbs.main.connect() as conn:
        assert {s["id"]: s["is_default"] for s in systems_repo.list_systems(conn)} == {a: False, b: True}
        series_before = {p["key"]: p["id"] for p in systems_repo.system_points(conn, a)}
    with pytest.raises(system_admin.RegistryError, match="already has the solarman site"):
        with dbs.main.begin() as conn:
            system_admin.add_system(conn, ctx.settings, "Home again", "solarman", "1", "alice",
                                    credentials=DEFAULT_CREDENTIALS["solarman"])
    with dbs.main.begin() as conn:
        system_admin.edit_point(conn, a, "power", label="PV output", display_order=1, visible=False, by="root",
                                transform={"scale": 2.0}, effective_from=1_700_000_000)
    with dbs.main.connect() as conn:
        pts = systems_repo.system_points(conn, a)
        versions = systems_repo.transform_versions(conn, [series_before["power"]])
    power = next(p for p in pts if p["key"] == "power")
    assert (power["label"], power["display_order"], power["visible"]) == ("PV output", 1, False)
    assert pts[0]["key"] == "power"  # display order moved it first
    assert {p["key"]: p["id"] for p in pts} == series_before  # same series: the history stays
    assert versions == {series_before["power"]: [(1_700_000_000, {"scale": 2.0})]}
    for bad, message in (({"transform": {"scale": "x"}, "effective_from": 1}, "number"),
                         ({"unit": "kW"}, "cannot edit"), ({"transform": {"scale": 1.0}}, "effective time")):
        with pytest.raises(system_admin.RegistryError, match=message):
            with dbs.main.begin() as conn:
                system_admin.edit_point(conn, a, "power", **bad)


def test_access_rules():
    s = {"owner": "alice", "shared_with": frozenset({"bob"})}
    alice, bob, carol = (Principal("user", n, r) for n, r in (("alice", "user"), ("bob", "viewer"), ("carol", "user")))
    admin, token, cron = Principal("user", "root", "admin"), Principal("token", "ci", "viewer"), Principal("cron", "cron", "cron")
    assert [can_read_system(p, s) for p in (alice, bob, carol, admin, token, cron, None)] == [
        True, True, False, True, False, False, False]
    assert [can_write_system(p, s) for p in (alice, bob, carol, admin, token, cron, None)] == [
        True, False, False, True, False, False, False]
    # an admin bound to another organization sees nothing of it
    assert not can_read_system(Principal("user", "ops", "admin", organization_id=2), {**s, "organization_id": 1})
    assert can_read_system(Principal("user", "ops", "admin", organization_id=1), {**s, "organization_id": 1})
    # an owner demoted to viewer still reads, no longer writes
    assert can_read_system(Principal("user", "alice", "viewer"), s)
    assert not can_write_system(Principal("user", "alice", "viewer"), s)


class Server:
    """The app on uvicorn, on a free loopback port."""

    def __init__(self, app):
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
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


def test_system_routes_check_access(sqlite_dbs, tmp_path):
    ctx = make_ctx(sqlite_dbs, tmp_path)
    ctx.settings.cron_secret = "cron-secret-for-tests"
    with sqlite_dbs.main.begin() as conn:
        for name, role in (("alice", "user"), ("carol", "user"), ("bob", "viewer"), ("vic", "viewer"),
                           ("root", "admin")):
            create_user(conn, name, PASSWORD, role)
        own = system_admin.add_system(conn, ctx.settings, "Home", "solarman", "1", "alice",
                                      credentials=DEFAULT_CREDENTIALS["solarman"])
        foreign = system_admin.add_system(conn, ctx.settings, "Carol's", "solarman", "2", "carol",
                                          credentials=DEFAULT_CREDENTIALS["solarman"])
        system_admin.share_system(conn, own, "bob", "alice")
        cookies = {n: issue_session(ctx.settings.encryption_key, get_user_principal(conn, n))
                   for n in ("alice", "carol", "bob", "vic", "root")}

    def get(server, path, who=None, **kw):
        c = {COOKIE_NAME: cookies[who]} if who else {}
        return httpx.get(server.url + path, cookies=c, **kw)

    with Server(create_app(ctx)) as server:
        assert get(server, "/api/data/systems").status_code == 401
        ids = {who: [s["id"] for s in get(server, "/api/data/systems", who).json()["systems"]]
               for who in cookies}
        assert ids == {"alice": [own], "carol": [foreign], "bob": [own], "vic": [], "root": [own, foreign]}
        body = get(server, "/api/data/systems", "bob").json()["systems"][0]
        assert (body["owner"], body["alias"], body["status"], body["sharedWith"]) == ("alice", "home", "active", ["bob"])

        path = f"/api/data/systems/{own}"
        assert get(server, path).status_code == 401
        assert {who: get(server, path, who).status_code for who in cookies} == {
            "alice": 200, "bob": 200, "root": 200, "carol": 404, "vic": 404}
        assert get(server, f"/api/data/systems/{foreign}", "alice").json()["code"] == "not_found"
        assert [p["key"] for p in get(server, path, "bob").json()["points"]][:1] == ["energy_total"]
        assert get(server, "/api/data/systems/0", "root").status_code == 400

        sessions = "/api/admin/sessions"
        assert get(server, sessions).status_code == 401
        assert {who: get(server, sessions, who).status_code for who in cookies} == {
            "alice": 403, "carol": 403, "bob": 403, "vic": 403, "root": 200}
        bad = get(server, sessions, "root", params={"since": "last tuesday"})
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_parameter"
        assert get(server, sessions, "root", params={"systemId": "x"}).status_code == 400

        poll = server.url + "/api/cron/poll"
        assert httpx.post(poll).status_code == 401
        assert httpx.post(poll, headers=session_headers(ctx.settings.encryption_key, cookies["alice"])).json()[
            "code"] == "forbidden"  # the role, not the CSRF check, refuses her
        assert httpx.post(poll, headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_an_alias_or_slug_with_a_trailing_newline_is_refused():
    """``$`` alone lets "home\\n" through a regex match: the admin fuzz's alias rule check
    (the schema's pattern, which ECMA anchors at the very end) showed the difference."""
    import re

    from wattline.domain.systems import ALIAS_PATTERN, alias_problem

    for bad in ("home\n", "home\r\n", "", "-home", "Home", "a" * 64):
        assert alias_problem(bad) is not None, repr(bad)
    for good in ("home", "home-pv_2", "a" * 63):
        assert alias_problem(good) is None and re.fullmatch(ALIAS_PATTERN.strip("^$"), good), good

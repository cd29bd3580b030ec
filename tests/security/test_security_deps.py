"""FastAPI dependencies and the error JSON shape, through a tiny app."""

from __future__ import annotations

import os
from dataclasses import replace
from types import SimpleNamespace

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from wattline.security.deps import get_principal, require_cron_or_role, require_role
from wattline.security.errors import ApiError, install_error_handlers
from wattline.security.principal import Principal
from wattline.security.sessions import COOKIE_NAME, issue_session
from wattline.security.tokens import create_token
from wattline.security.users import authenticate, create_user, delete_user, get_user_principal, set_password

CRON = "cron-secret-for-tests"


@pytest.fixture
def setup(dbs):
    settings = SimpleNamespace(encryption_key=os.urandom(32), cron_secret=CRON)
    app = FastAPI()
    app.state.ctx = SimpleNamespace(settings=settings, dbs=dbs)
    install_error_handlers(app)

    @app.get("/admin-only")
    def admin_only(p: Principal = Depends(require_role("superadmin"))):
        return {"name": p.name, "kind": p.kind}

    @app.post("/sync-all")
    def sync_all(p: Principal = Depends(require_cron_or_role("admin"))):
        return {"kind": p.kind}

    @app.get("/whoami")
    def whoami(p: Principal | None = Depends(get_principal)):
        return {"name": p.name if p else None}

    @app.get("/items/{item_id}")
    def item(item_id: int):
        raise ApiError(409, "conflict", "item is busy", {"item_id": item_id})

    with dbs.main.begin() as conn:
        tokens = {r: create_token(conn, f"{r}-tok", r) for r in ("viewer", "admin", "superadmin")}
        create_user(conn, "alice", "long enough pw", "superadmin")
        create_user(conn, "vic", "long enough pw", "viewer")
    return TestClient(app), tokens, settings


def bearer(value: str) -> dict:
    return {"Authorization": f"Bearer {value}"}


def test_no_auth_is_401_json(setup):
    client, _, _ = setup
    r = client.get("/admin-only")
    assert r.status_code == 401
    assert r.json() == {"error": "authentication required", "code": "unauthorized", "details": None}
    assert r.headers["www-authenticate"] == "Bearer"
    assert client.get("/admin-only", headers=bearer("wl_unknown")).status_code == 401
    assert client.get("/admin-only", headers={"Authorization": "Basic YTpi"}).status_code == 401


def test_roles_via_tokens(setup):
    client, tokens, _ = setup
    r = client.get("/admin-only", headers=bearer(tokens["viewer"]))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = client.get("/admin-only", headers=bearer(tokens["superadmin"]))
    assert r.status_code == 200 and r.json() == {"name": "superadmin-tok", "kind": "token"}
    assert client.post("/sync-all", headers=bearer(tokens["viewer"])).status_code == 403
    assert client.post("/sync-all", headers=bearer(tokens["admin"])).json() == {"kind": "token"}


def test_cron_secret_only_opens_the_cron_route(setup):
    client, _, _ = setup
    r = client.post("/sync-all", headers=bearer(CRON))
    assert r.status_code == 200 and r.json() == {"kind": "cron"}
    assert client.get("/admin-only", headers=bearer(CRON)).status_code == 403
    assert client.post("/sync-all", headers=bearer(CRON + "x")).status_code == 401
    assert client.post("/sync-all", headers={"Authorization": "Bearer sécret".encode("latin-1")}).status_code == 401  # non-ASCII: no crash


def test_cron_secret_unset_is_never_accepted(setup):
    client, _, settings = setup
    settings.cron_secret = None
    assert client.post("/sync-all", headers=bearer(CRON)).status_code == 401
    settings.cron_secret = ""
    assert client.post("/sync-all", headers={"Authorization": "Bearer "}).status_code == 401


def test_session_cookie(setup, dbs):
    client, _, settings = setup
    with dbs.main.connect() as conn:
        alice, vic = (get_user_principal(conn, n) for n in ("alice", "vic"))
    client.cookies.set(COOKIE_NAME, issue_session(settings.encryption_key, alice))
    r = client.get("/admin-only")
    assert r.status_code == 200 and r.json() == {"name": "alice", "kind": "user"}
    # a cookie claiming a higher role than the database grants gets the database's role
    client.cookies.set(COOKIE_NAME, issue_session(settings.encryption_key, replace(vic, role="superadmin")))
    assert client.get("/admin-only").status_code == 403
    # a cookie for a user that no longer exists (or never did) is no login
    client.cookies.set(COOKIE_NAME, issue_session(settings.encryption_key, Principal("user", "ghost", "superadmin")))
    assert client.get("/admin-only").status_code == 401
    client.cookies.set(COOKIE_NAME, issue_session(os.urandom(32), alice))
    assert client.get("/whoami").json() == {"name": None}


def test_password_change_and_deletion_end_open_sessions(setup, dbs):
    client, _, settings = setup
    with dbs.main.connect() as conn:
        alice = get_user_principal(conn, "alice")
    cookie = issue_session(settings.encryption_key, alice)
    client.cookies.set(COOKIE_NAME, cookie)
    assert client.get("/admin-only").status_code == 200
    # without the credential tag (an older cookie format) a session is no login
    client.cookies.set(COOKIE_NAME, issue_session(settings.encryption_key, replace(alice, credential=None)))
    assert client.get("/admin-only").status_code == 401
    with dbs.main.begin() as conn:
        assert set_password(conn, "alice", "another long pw")
    client.cookies.set(COOKIE_NAME, cookie)
    assert client.get("/admin-only").status_code == 401  # opened with the old password
    with dbs.main.begin() as conn:
        fresh = authenticate(conn, "alice", "another long pw")
        assert fresh is not None and authenticate(conn, "alice", "long enough pw") is None
    client.cookies.set(COOKIE_NAME, issue_session(settings.encryption_key, fresh))
    assert client.get("/admin-only").status_code == 200
    with dbs.main.begin() as conn:
        assert delete_user(conn, "alice") and not delete_user(conn, "alice")
    assert client.get("/admin-only").status_code == 401


def test_error_shapes(setup):
    client, _, _ = setup
    r = client.get("/items/3")
    assert r.status_code == 409 and r.json() == {"error": "item is busy", "code": "conflict",
                                                 "details": {"item_id": 3}}
    r = client.get("/items/not-a-number")
    assert r.status_code == 400 and r.json()["code"] == "invalid_request"
    assert r.json()["details"]["errors"][0]["loc"] == ["path", "item_id"]
    assert "not-a-number" not in r.text  # input values are never echoed
    r = client.get("/nowhere")
    assert r.status_code == 404 and r.json() == {"error": "Not Found", "code": "not_found", "details": None}

"""Sign-in throttling on the dashboard's form: five failures of one username from one
address, or thirty from one address, refuse further tries with 429 and Retry-After
(without checking the password) until the window has passed; a success clears it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from world import CLOUD_NOW, make_ctx
from wattline.api.app import create_app
from wattline.security.signin_throttle import PER_ADDRESS, PER_USER_AND_ADDRESS, WINDOW_S
from wattline.security.users import create_user

PASSWORD = "a long test password"


def _login(client, username, password):
    return client.post("/login", data={"username": username, "password": password, "next": "/"},
                       follow_redirects=False)


def test_failed_sign_ins_are_throttled_per_user_and_address_then_the_window_passes(sqlite_dbs, tmp_path,
                                                                                    set_clock):
    set_clock(CLOUD_NOW)
    ctx = make_ctx(sqlite_dbs, tmp_path)
    with ctx.dbs.main.begin() as conn:
        create_user(conn, "alice", PASSWORD, "user")
        create_user(conn, "bob", PASSWORD, "user")
    with TestClient(create_app(ctx)) as client:
        for _ in range(PER_USER_AND_ADDRESS):
            assert _login(client, "alice", "wrong password!").status_code == 401
        refused = _login(client, "alice", PASSWORD)  # even the right password: not checked
        assert refused.status_code == 429 and WINDOW_S - 60 < int(refused.headers["Retry-After"]) <= WINDOW_S
        assert "Too many failed sign-ins" in refused.text and "session" not in refused.headers.get("set-cookie", "")
        assert _login(client, "bob", PASSWORD).status_code == 303  # another user from the address: fine
        set_clock(CLOUD_NOW + WINDOW_S + 120)  # the failures were a few real seconds after CLOUD_NOW
        ok = _login(client, "alice", PASSWORD)
        assert ok.status_code == 303 and ok.headers["location"] == "/"


def test_an_address_guessing_many_usernames_is_refused(sqlite_dbs, tmp_path, set_clock):
    set_clock(CLOUD_NOW)
    ctx = make_ctx(sqlite_dbs, tmp_path)
    with ctx.dbs.main.begin() as conn:
        create_user(conn, "carol", PASSWORD, "user")
    with TestClient(create_app(ctx)) as client:
        for i in range(PER_ADDRESS):
            assert _login(client, f"guess{i}", "wrong password!").status_code == 401
        assert _login(client, "carol", PASSWORD).status_code == 429

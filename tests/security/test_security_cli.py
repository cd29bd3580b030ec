"""`wattline tokens` / `wattline users` Typer apps, against a fresh SQLite data dir."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from wattline.cli_security import tokens_app, users_app
from wattline.config import Settings
from wattline.context import open_context
from wattline.security.tokens import lookup_token
from wattline.security.users import authenticate

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    for var in ("WATTLINE_MAIN_URL", "WATTLINE_TELEMETRY_URL", "WATTLINE_SECRET_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WATTLINE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def _open(data_dir):
    ctx = open_context(Settings(data_dir=data_dir))
    return ctx


def test_tokens_create_and_list(data_dir):
    r = runner.invoke(tokens_app, ["create", "--role", "admin", "--name", "ci"])
    assert r.exit_code == 0, r.output
    token = r.stdout.strip()
    assert token.startswith("wl_") and "\n" not in token
    assert "will not be shown again" in r.stderr
    ctx = _open(data_dir)
    try:
        with ctx.dbs.main_reader.connect() as conn:
            p = lookup_token(conn, token)
    finally:
        ctx.close()
    assert p is not None and (p.name, p.role) == ("ci", "admin")

    r = runner.invoke(tokens_app, ["list"])
    assert r.exit_code == 0 and "ci" in r.stdout and "admin" in r.stdout
    assert token not in r.stdout and token[3:13] not in r.stdout

    r = runner.invoke(tokens_app, ["create", "--role", "owner"])
    assert r.exit_code == 2 and "unknown role" in r.stderr


def test_users_create_password_stdin(data_dir):
    r = runner.invoke(users_app, ["create", "alice", "--role", "admin", "--password-stdin"],
                      input="long enough pw\n")
    assert r.exit_code == 0, r.output
    assert "long enough pw" not in r.output
    ctx = _open(data_dir)
    try:
        with ctx.dbs.main_reader.connect() as conn:
            assert authenticate(conn, "alice", "long enough pw").role == "admin"
    finally:
        ctx.close()

    r = runner.invoke(users_app, ["create", "alice", "--role", "user", "--password-stdin"], input="another pw 123\n")
    assert r.exit_code == 2 and "already exists" in r.stderr
    r = runner.invoke(users_app, ["create", "bob", "--role", "user", "--password-stdin"], input="short\n")
    assert r.exit_code == 2 and "at least 8" in r.stderr and "short" not in r.stderr.replace("at least", "")


def test_users_create_prompts_twice(data_dir):
    r = runner.invoke(users_app, ["create", "carol", "--role", "viewer"],
                      input="long enough pw\nlong enough pw\n")
    assert r.exit_code == 0, r.output
    assert r.output.count("Password") >= 1 and "long enough pw" not in r.output  # hidden input
    r = runner.invoke(users_app, ["create", "dave", "--role", "viewer"], input="long enough pw\nmismatch!!\n")
    assert r.exit_code != 0  # confirmation never matched: aborted, no user
    ctx = _open(data_dir)
    try:
        with ctx.dbs.main_reader.connect() as conn:
            assert authenticate(conn, "carol", "long enough pw") is not None
            assert authenticate(conn, "dave", "long enough pw") is None
    finally:
        ctx.close()


def test_users_list_passwd_and_delete(data_dir):
    for name, role in (("erin", "admin"), ("frank", "viewer")):
        r = runner.invoke(users_app, ["create", name, "--role", role, "--password-stdin"], input="long enough pw\n")
        assert r.exit_code == 0, r.output
    r = runner.invoke(users_app, ["list"])
    assert r.exit_code == 0 and "erin" in r.stdout and "frank" in r.stdout and "viewer" in r.stdout
    assert "argon2" not in r.stdout  # never a hash

    r = runner.invoke(users_app, ["passwd", "erin", "--password-stdin"], input="a new long pw\n")
    assert r.exit_code == 0, r.output
    assert "a new long pw" not in r.output
    r = runner.invoke(users_app, ["passwd", "erin", "--password-stdin"], input="short\n")
    assert r.exit_code == 2 and "at least 8" in r.stderr
    r = runner.invoke(users_app, ["passwd", "nobody", "--password-stdin"], input="long enough pw\n")
    assert r.exit_code == 1 and "no user" in r.stderr

    r = runner.invoke(users_app, ["delete", "frank"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(users_app, ["delete", "frank"])
    assert r.exit_code == 1 and "no user" in r.stderr
    ctx = _open(data_dir)
    try:
        with ctx.dbs.main_reader.connect() as conn:
            assert authenticate(conn, "erin", "a new long pw") is not None
            assert authenticate(conn, "erin", "long enough pw") is None
            assert authenticate(conn, "frank", "long enough pw") is None
    finally:
        ctx.close()
    r = runner.invoke(users_app, ["list"])
    assert "frank" not in r.stdout and "erin" in r.stdout

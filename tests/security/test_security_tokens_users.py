"""API tokens and users in the main database, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib

import pytest
from argon2 import PasswordHasher
from sqlalchemy import insert, select

from wattline.security.principal import Principal
from wattline.security.roles import RoleError
from wattline.security.tokens import create_token, list_tokens, lookup_token, revoke_token
from wattline.security.users import UserError, authenticate, create_user
from wattline.store.tables import api_tokens, main_metadata, organizations, users


def _all_main_values(conn) -> str:
    """Every value in every main table, as one string to search."""
    return "\n".join(repr(tuple(row)) for t in main_metadata.sorted_tables for row in conn.execute(select(t)))


def test_token_is_stored_hashed_and_looked_up(dbs):
    with dbs.main.begin() as conn:
        org = conn.execute(insert(organizations).values(name="acme")).inserted_primary_key[0]
        token = create_token(conn, "grafana", "viewer", organization_id=org)
    assert token.startswith("wl_") and len(token) >= 40
    with dbs.main.connect() as conn:
        dump = _all_main_values(conn)
        stored = conn.execute(select(api_tokens.c.token_sha256)).scalar_one()
    assert token not in dump and token[3:] not in dump
    assert stored == hashlib.sha256(token.encode()).hexdigest()

    with dbs.main_reader.connect() as conn:
        assert lookup_token(conn, token) == Principal("token", "grafana", "viewer", org)
        assert lookup_token(conn, token + "x") is None
        assert lookup_token(conn, token[3:]) is None  # without the prefix
        assert lookup_token(conn, "") is None
        listed = list_tokens(conn)
    assert [(r["name"], r["role"]) for r in listed] == [("grafana", "viewer")]
    assert "token_sha256" not in listed[0]

    with dbs.main.begin() as conn:
        assert revoke_token(conn, listed[0]["id"]) and not revoke_token(conn, listed[0]["id"])
        assert lookup_token(conn, token) is None


def test_token_rejects_bad_role_and_name(dbs):
    with dbs.main.begin() as conn:
        with pytest.raises(RoleError):
            create_token(conn, "x", "owner")
        with pytest.raises(ValueError, match="name"):
            create_token(conn, "  ", "admin")
        assert conn.execute(select(api_tokens)).first() is None


def test_user_create_and_authenticate(dbs):
    with dbs.main.begin() as conn:
        uid = create_user(conn, "alice", "long enough pw", "admin")
    assert isinstance(uid, int)
    with dbs.main.connect() as conn:
        assert "long enough pw" not in _all_main_values(conn)
    with dbs.main_reader.connect() as conn:
        assert authenticate(conn, "alice", "long enough pw") == Principal("user", "alice", "admin", None)
        assert authenticate(conn, "alice", "long enough PW") is None
        assert authenticate(conn, "bob", "long enough pw") is None
        assert authenticate(conn, "alice", "") is None


def test_user_validation_and_duplicates(dbs):
    with dbs.main.begin() as conn:
        create_user(conn, "alice", "long enough pw", "user")
    tried = ["short", "long enough pw", "another password"]
    for username, password, role, message in [
        ("bob", "short", "user", "password must be at least 8 characters"),
        ("bob", "", "user", "password must be at least 8 characters"),
        ("", "long enough pw", "user", "username must be 1-120 characters"),
        ("alice", "another password", "viewer", "user 'alice' already exists"),
    ]:
        with pytest.raises(UserError) as info, dbs.main.begin() as conn:
            create_user(conn, username, password, role)
        # the whole message is fixed text: no password, tried here or elsewhere, is in it
        assert str(info.value) == message
        assert not [p for p in tried if p in str(info.value)]
    with pytest.raises(RoleError), dbs.main.begin() as conn:
        create_user(conn, "bob", "long enough pw", "god")
    with dbs.main.connect() as conn:
        assert conn.execute(select(users.c.username)).scalars().all() == ["alice"]


def test_outdated_hash_is_upgraded_on_login(dbs):
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("long enough pw")
    with dbs.main.begin() as conn:
        conn.execute(insert(users).values(username="old", password_hash=weak, role="viewer"))
    with dbs.main.begin() as conn:
        assert authenticate(conn, "old", "long enough pw", rehash=True) is not None
    with dbs.main.connect() as conn:
        new = conn.execute(select(users.c.password_hash)).scalar_one()
    assert new != weak and new.startswith("$argon2id$")

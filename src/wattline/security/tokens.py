"""API tokens: shown once, stored only as their SHA-256.

A token carries 256 bits of randomness, so an unsalted SHA-256 is enough (no
password-style stretching needed) and lets us look it up by an indexed equality
on the hash: the database never compares anything derived from a guess byte by
byte against a stored secret.
"""

from __future__ import annotations

import hashlib
import secrets

from wattline.security.principal import Principal
from wattline.security.roles import validate_role
from wattline.store import tokens_repo
from wattline.store.tokens_repo import Connection

PREFIX = "wl_"
_MAX_TOKEN_LENGTH = 200  # ours are 46 chars; anything longer is not worth hashing


class TokenError(ValueError):
    """Invalid token parameters (never carries a token)."""


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(conn: Connection, name: str, role: str, organization_id: int | None = None) -> str:
    """Store a new token and return its plaintext; it cannot be recovered later."""
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise TokenError("token name must be 1-120 characters")
    validate_role(role)
    token = PREFIX + secrets.token_urlsafe(32)
    tokens_repo.insert_token(conn, name, role, organization_id, token_sha256(token))
    return token


def lookup_token(conn: Connection, token: str) -> Principal | None:
    """The principal a token stands for, or None if unknown."""
    if not token or not token.startswith(PREFIX) or len(token) > _MAX_TOKEN_LENGTH:
        return None
    row = tokens_repo.by_sha256(conn, token_sha256(token))
    if row is None:
        return None
    return Principal(kind="token", name=row["name"], role=row["role"], organization_id=row["organization_id"])


def list_tokens(conn: Connection) -> list[dict]:
    """Token metadata for display; never the hash."""
    return tokens_repo.list_all(conn)


def revoke_token(conn: Connection, token_id: int) -> bool:
    """Delete a token by id; True if it existed."""
    return tokens_repo.delete_by_id(conn, token_id)


__all__ = ["PREFIX", "TokenError", "create_token", "list_tokens", "lookup_token", "revoke_token",
           "token_sha256"]

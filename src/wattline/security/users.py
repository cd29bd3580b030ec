"""Dashboard users: argon2id password hashes in the main database."""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from wattline.security import passwords
from wattline.security.principal import Principal
from wattline.security.roles import validate_role
from wattline.store.tables import users

MAX_PASSWORD_LENGTH = 1024  # argon2 accepts more; a cap keeps a login request cheap


class UserError(ValueError):
    """Invalid user parameters or a duplicate username (never carries a password)."""


def _check_username(username: str) -> str:
    username = (username or "").strip()
    if not username or len(username) > 120:
        raise UserError("username must be 1-120 characters")
    return username


def check_password_policy(password: str) -> None:
    if not password or len(password) < passwords.MIN_PASSWORD_LENGTH:
        raise UserError(f"password must be at least {passwords.MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"password must be at most {MAX_PASSWORD_LENGTH} characters")


def create_user(conn: Connection, username: str, password: str, role: str,
                organization_id: int | None = None) -> int:
    """Create a user and return its id; UserError on a bad or duplicate username."""
    username = _check_username(username)
    validate_role(role)
    check_password_policy(password)
    if conn.execute(select(users.c.id).where(users.c.username == username)).first() is not None:
        raise UserError(f"user {username!r} already exists")
    try:
        result = conn.execute(insert(users).values(
            username=username, password_hash=passwords.hash_password(password), role=role,
            organization_id=organization_id))
    except IntegrityError:
        # a concurrent create won the race (or the organization does not exist)
        raise UserError(f"user {username!r} could not be created: already exists or unknown organization") from None
    return result.inserted_primary_key[0]


def credential_tag(password_hash: str) -> str:
    """A short tag of a password hash: sessions carry it, and a new password changes it."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def get_user_principal(conn: Connection, username: str) -> Principal | None:
    """The user's current role, organization and credential tag, or None if the user is gone."""
    row = conn.execute(select(users.c.username, users.c.role, users.c.organization_id, users.c.password_hash)
                       .where(users.c.username == username)).first()
    if row is None:
        return None
    return Principal(kind="user", name=row.username, role=row.role, organization_id=row.organization_id,
                     credential=credential_tag(row.password_hash))


def list_users(conn: Connection) -> list[dict]:
    """Every user (id, username, role, organization, created); never a password hash."""
    rows = conn.execute(select(users.c.id, users.c.username, users.c.role, users.c.organization_id,
                               users.c.created_at).order_by(users.c.username))
    return [dict(r._mapping) for r in rows]


def delete_user(conn: Connection, username: str) -> bool:
    """Delete a user; their sessions stop working at once. False if there was none."""
    return conn.execute(delete(users).where(users.c.username == _check_username(username))).rowcount > 0


def set_password(conn: Connection, username: str, password: str) -> bool:
    """Give a user a new password; sessions opened with the old one stop working.
    False if there is no such user."""
    check_password_policy(password)
    result = conn.execute(update(users).where(users.c.username == _check_username(username))
                          .values(password_hash=passwords.hash_password(password)))
    return result.rowcount > 0


def authenticate(conn: Connection, username: str, password: str, *, rehash: bool = False) -> Principal | None:
    """The user's principal if the password matches, else None.

    With ``rehash=True`` (``conn`` must be writable) a hash made with outdated
    parameters is upgraded on a successful login.
    """
    if not username or not password or len(password) > MAX_PASSWORD_LENGTH:
        return None
    row = conn.execute(select(users.c.id, users.c.username, users.c.password_hash, users.c.role,
                              users.c.organization_id).where(users.c.username == username.strip())).first()
    if row is None:
        passwords.verify_password(passwords.dummy_hash(), password)  # same cost as a miss
        return None
    if not passwords.verify_password(row.password_hash, password):
        return None
    current = row.password_hash
    if rehash and passwords.needs_rehash(current):
        current = passwords.hash_password(password)
        conn.execute(update(users).where(users.c.id == row.id).values(password_hash=current))
    return Principal(kind="user", name=row.username, role=row.role, organization_id=row.organization_id,
                     credential=credential_tag(current))

"""Dashboard users: argon2id password hashes in the main database."""

from __future__ import annotations

import hashlib

from wattline.security import passwords
from wattline.security.principal import Principal
from wattline.security.roles import validate_role
from wattline.store import users_repo
from wattline.store.users_repo import Connection

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
    if users_repo.exists(conn, username):
        raise UserError(f"user {username!r} already exists")
    try:
        return users_repo.insert_user(conn, username, passwords.hash_password(password), role, organization_id)
    except users_repo.UserRowConflict:
        # a concurrent create won the race (or the organization does not exist)
        raise UserError(f"user {username!r} could not be created: already exists or unknown organization") from None


def credential_tag(password_hash: str) -> str:
    """A short tag of a password hash: sessions carry it, and a new password changes it."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def get_user_principal(conn: Connection, username: str) -> Principal | None:
    """The user's current role, organization and credential tag, or None if the user is gone."""
    row = users_repo.by_username(conn, username)
    if row is None:
        return None
    return Principal(kind="user", name=row["username"], role=row["role"], organization_id=row["organization_id"],
                     credential=credential_tag(row["password_hash"]))


def list_users(conn: Connection) -> list[dict]:
    """Every user (id, username, role, organization, created); never a password hash."""
    return users_repo.list_all(conn)


def delete_user(conn: Connection, username: str) -> bool:
    """Delete a user; their sessions stop working at once. False if there was none."""
    return users_repo.delete_by_username(conn, _check_username(username))


def set_password(conn: Connection, username: str, password: str) -> bool:
    """Give a user a new password; sessions opened with the old one stop working.
    False if there is no such user."""
    check_password_policy(password)
    return users_repo.set_password_hash_by_username(conn, _check_username(username),
                                                    passwords.hash_password(password))


def authenticate(conn: Connection, username: str, password: str, *, rehash: bool = False) -> Principal | None:
    """The user's principal if the password matches, else None.

    With ``rehash=True`` (``conn`` must be writable) a hash made with outdated
    parameters is upgraded on a successful login.
    """
    if not username or not password or len(password) > MAX_PASSWORD_LENGTH:
        return None
    row = users_repo.by_username(conn, username.strip())
    if row is None:
        passwords.verify_password(passwords.dummy_hash(), password)  # same cost as a miss
        return None
    if not passwords.verify_password(row["password_hash"], password):
        return None
    current = row["password_hash"]
    if rehash and passwords.needs_rehash(current):
        current = passwords.hash_password(password)
        users_repo.set_password_hash_by_id(conn, row["id"], current)
    return Principal(kind="user", name=row["username"], role=row["role"], organization_id=row["organization_id"],
                     credential=credential_tag(current))

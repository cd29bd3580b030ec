"""Dashboard user rows (table ``users``, main database). Calls take the caller's
connection, so a command's checks and writes share one transaction."""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from wattline.store.tables import users


class UserRowConflict(Exception):
    """The row could not be inserted: the username exists or the organization does not."""


def exists(conn: Connection, username: str) -> bool:
    return conn.execute(select(users.c.id).where(users.c.username == username)).first() is not None


def insert_user(conn: Connection, username: str, password_hash: str, role: str,
                organization_id: int | None) -> int:
    """Insert a user; returns its id. :class:`UserRowConflict` on a constraint violation."""
    try:
        result = conn.execute(insert(users).values(username=username, password_hash=password_hash, role=role,
                                                   organization_id=organization_id))
    except IntegrityError:
        raise UserRowConflict(username) from None
    return result.inserted_primary_key[0]


def by_username(conn: Connection, username: str) -> dict | None:
    """id, username, password_hash, role, organization_id of a user, or None."""
    row = conn.execute(select(users.c.id, users.c.username, users.c.password_hash, users.c.role,
                              users.c.organization_id).where(users.c.username == username)).mappings().first()
    return None if row is None else dict(row)


def list_all(conn: Connection) -> list[dict]:
    """id, username, role, organization_id, created_at of every user, by username (no hashes)."""
    rows = conn.execute(select(users.c.id, users.c.username, users.c.role, users.c.organization_id,
                               users.c.created_at).order_by(users.c.username))
    return [dict(r._mapping) for r in rows]


def delete_by_username(conn: Connection, username: str) -> bool:
    return conn.execute(delete(users).where(users.c.username == username)).rowcount > 0


def set_password_hash_by_username(conn: Connection, username: str, password_hash: str) -> bool:
    return conn.execute(update(users).where(users.c.username == username)
                        .values(password_hash=password_hash)).rowcount > 0


def set_password_hash_by_id(conn: Connection, user_id: int, password_hash: str) -> None:
    conn.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))


def set_role_by_username(conn: Connection, username: str, role: str) -> bool:
    """Change a user's role; False if there is no such user."""
    return conn.execute(update(users).where(users.c.username == username).values(role=role)).rowcount > 0

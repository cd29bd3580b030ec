"""API token rows (table ``api_tokens``, main database): only a token's SHA-256 is stored."""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select

from wattline.store.tables import api_tokens


def insert_token(conn: Connection, name: str, role: str, organization_id: int | None, token_sha256: str) -> None:
    conn.execute(insert(api_tokens).values(name=name, role=role, organization_id=organization_id,
                                           token_sha256=token_sha256))


def by_sha256(conn: Connection, token_sha256: str) -> dict | None:
    """name, role, organization_id of the token with this hash (indexed equality), or None."""
    row = conn.execute(select(api_tokens.c.name, api_tokens.c.role, api_tokens.c.organization_id)
                       .where(api_tokens.c.token_sha256 == token_sha256)).mappings().first()
    return None if row is None else dict(row)


def list_all(conn: Connection) -> list[dict]:
    """id, name, role, organization_id, created_at of every token, by id (never the hash)."""
    rows = conn.execute(select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.role,
                               api_tokens.c.organization_id, api_tokens.c.created_at).order_by(api_tokens.c.id))
    return [dict(r._mapping) for r in rows]


def delete_by_id(conn: Connection, token_id: int) -> bool:
    return conn.execute(delete(api_tokens).where(api_tokens.c.id == token_id)).rowcount > 0

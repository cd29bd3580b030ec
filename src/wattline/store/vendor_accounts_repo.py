"""One vendor account's row, and replacing its (already encrypted) credentials.

Used when a vendor hands out new credentials after the account was added: the
Enphase OAuth callback stores the owner's tokens, and a token refresh stores the
rotated refresh token. The blob is AES-256-GCM ciphertext made by
``security.crypto.encrypt_credentials``; this module never sees plain credentials.
"""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from wattline.store.tables import vendor_accounts


def get(conn: Connection, account_id: int) -> dict | None:
    """id, organization_id, vendor_type, name, base_url, credentials_encrypted, rate_limits."""
    row = conn.execute(select(vendor_accounts).where(vendor_accounts.c.id == int(account_id))).mappings().first()
    return dict(row) if row is not None else None


def replace_credentials(conn: Connection, account_id: int, credentials_encrypted: bytes) -> bool:
    """Store a new credentials blob; False when there is no such account."""
    done = conn.execute(update(vendor_accounts).where(vendor_accounts.c.id == int(account_id))
                        .values(credentials_encrypted=bytes(credentials_encrypted)))
    return done.rowcount == 1

"""Storing credentials a vendor renewed while a job ran (an OAuth refresh token that
rotated): encrypted as when the account was added, so the next run starts from them."""

from __future__ import annotations

from typing import Callable

from wattline.context import AppContext
from wattline.security.crypto import encrypt_credentials
from wattline.sources.vendors.credentials import VendorCredentials
from wattline.store import vendor_accounts_repo


def credential_saver(ctx: AppContext, account_id: int) -> Callable[[VendorCredentials], None]:
    """A callback for adapters that renew their credentials (``on_credentials``)."""

    def save(credentials: VendorCredentials) -> None:
        blob = encrypt_credentials(ctx.settings.encryption_key, credentials.to_storage())
        with ctx.dbs.main.begin() as conn:
            vendor_accounts_repo.replace_credentials(conn, account_id, blob)

    return save

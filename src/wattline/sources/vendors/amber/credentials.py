"""Credentials of an Amber Electric account: one personal API key (``psk_…``)."""

from __future__ import annotations

from pydantic import SecretStr

from ..credentials import VendorCredentials


class AmberCredentials(VendorCredentials):
    """``api_key``: the account's API key, sent as ``Authorization: Bearer <api_key>``
    (created in the Amber app under Settings → Developers)."""

    api_key: SecretStr

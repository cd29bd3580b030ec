"""Credentials of a Fronius site."""

from __future__ import annotations

from pydantic import SecretStr

from ..credentials import VendorCredentials


class FroniusCredentials(VendorCredentials):
    """``api_key``: the site's push key (the secret the site-side pusher sends as
    ``apiKey``). The local Solar API itself has no authentication, so the key is
    optional for a site that is only polled; a site without one refuses every push."""

    api_key: SecretStr | None = None

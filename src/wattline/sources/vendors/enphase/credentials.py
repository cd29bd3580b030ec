"""Credentials of an Enphase Enlighten API v4 account (one application, one system owner).

``client_id`` / ``client_secret`` and ``api_key`` come from the application registered
at the Enphase developer portal; the tokens come from the OAuth 2.0 authorization-code
flow (``GET /api/auth/enphase/auth``, then the callback stores them here, encrypted).
An account added before the owner authorized has no tokens yet: the adapter then
refuses to fetch and says where to authorize.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from ..credentials import VendorCredentials


class EnphaseCredentials(VendorCredentials):
    """``client_id``, ``client_secret``, ``api_key`` (the application's); after the
    owner authorized: ``access_token``, ``refresh_token`` and ``access_expires_at``
    (UTC epoch s)."""

    keys_help = ("required: client_id, client_secret, api_key; "
                 "set by the OAuth callback: access_token, refresh_token, access_expires_at")

    client_id: str
    client_secret: SecretStr
    api_key: SecretStr
    access_token: SecretStr | None = None
    refresh_token: SecretStr | None = None
    access_expires_at: int | None = Field(default=None, ge=0)

    @property
    def authorized(self) -> bool:
        return self.refresh_token is not None or self.access_token is not None

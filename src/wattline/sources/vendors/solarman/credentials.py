"""Credentials of a Solarman OpenAPI account."""

from __future__ import annotations

from pydantic import SecretStr, model_validator

from ..credentials import VendorCredentials


class SolarmanCredentials(VendorCredentials):
    """``app_id`` and ``app_secret`` of the OpenAPI application, the account's
    ``email`` or ``username``, and its ``password`` (hashed before it is sent) or
    ``password_sha256`` (lowercase hex SHA-256 of it)."""

    keys_help = "required: app_id, app_secret, email or username, password or password_sha256"

    app_id: str
    app_secret: SecretStr
    email: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_sha256: SecretStr | None = None

    @model_validator(mode="after")
    def _one_of_each(self) -> "SolarmanCredentials":
        if not (self.email or self.username):
            raise ValueError("needs 'email' or 'username'")
        if self.password is None and self.password_sha256 is None:
            raise ValueError("needs 'password' or 'password_sha256'")
        return self

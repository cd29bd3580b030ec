"""Credentials of a Mondo Power account (the platform's own login)."""

from __future__ import annotations

from pydantic import SecretStr

from ..credentials import VendorCredentials


class MondoCredentials(VendorCredentials):
    """``email`` and ``password`` of the Mondo platform login (identity server)."""

    email: str
    password: SecretStr

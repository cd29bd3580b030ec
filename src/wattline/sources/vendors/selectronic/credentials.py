"""Credentials of a select.live account."""

from __future__ import annotations

from pydantic import SecretStr

from ..credentials import VendorCredentials


class SelectronicCredentials(VendorCredentials):
    """``email`` and ``password`` of the select.live login (sent as the form fields
    ``email`` and ``pwd``). The system number is the system's vendor site id."""

    email: str
    password: SecretStr

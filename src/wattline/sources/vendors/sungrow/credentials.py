"""Credentials of an iSolarCloud account."""

from __future__ import annotations

from pydantic import SecretStr

from ..credentials import VendorCredentials


class SungrowCredentials(VendorCredentials):
    """``appkey`` of the gateway application, ``username`` (the iSolarCloud account)
    and its ``password``."""

    appkey: SecretStr
    username: str
    password: SecretStr

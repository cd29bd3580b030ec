"""Credentials of a SolarEdge Monitoring API account."""

from __future__ import annotations

from pydantic import SecretStr

from ..credentials import VendorCredentials


class SolarEdgeCredentials(VendorCredentials):
    """``api_key``: a site or account API key of the Monitoring API (sent as the
    ``api_key`` query parameter; never logged)."""

    api_key: SecretStr

"""Mondo Power: the adapter (scripted OIDC login, live usage + subcircuits) and its mapping."""

from .adapter import MondoAdapter, pkce_pair
from .credentials import MondoCredentials
from .mapping import POINTS, parse_live_usage, parse_subcircuit, parse_token_response, poll_record, verification_token

__all__ = [
    "POINTS",
    "MondoAdapter",
    "MondoCredentials",
    "parse_live_usage",
    "parse_subcircuit",
    "parse_token_response",
    "pkce_pair",
    "poll_record",
    "verification_token",
]

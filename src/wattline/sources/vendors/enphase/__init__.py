"""Enphase Enlighten API v4 (OAuth 2.0): the adapter, its credentials and the mapping."""

from .adapter import EnphaseAdapter
from .credentials import EnphaseCredentials
from .mapping import LOCAL_POINTS, POINTS, parse_envoy_production, parse_production_micro, system_to_plant

__all__ = [
    "LOCAL_POINTS",
    "POINTS",
    "EnphaseAdapter",
    "EnphaseCredentials",
    "parse_envoy_production",
    "parse_production_micro",
    "system_to_plant",
]

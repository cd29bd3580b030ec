"""SolarEdge Monitoring API v1: the adapter, its credentials and the answer mapping."""

from .adapter import SolarEdgeAdapter
from .credentials import SolarEdgeCredentials
from .mapping import (
    POINTS,
    error_message,
    parse_details,
    parse_local,
    parse_meters,
    parse_power_flow,
    parse_site_values,
)

__all__ = [
    "POINTS",
    "SolarEdgeAdapter",
    "SolarEdgeCredentials",
    "error_message",
    "parse_details",
    "parse_local",
    "parse_meters",
    "parse_power_flow",
    "parse_site_values",
]

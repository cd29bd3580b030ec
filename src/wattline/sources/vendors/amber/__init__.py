"""Amber Electric public API v1: the adapter, its credentials and the record mapping."""

from .adapter import AmberAdapter
from .credentials import AmberCredentials
from .mapping import POINTS, PriceInterval, general_price_intervals, parse_prices, parse_usage, site_to_plant

__all__ = [
    "POINTS",
    "AmberAdapter",
    "AmberCredentials",
    "PriceInterval",
    "general_price_intervals",
    "parse_prices",
    "parse_usage",
    "site_to_plant",
]

"""Solarman cloud OpenAPI: the adapter, its credentials and the record mapping."""

from .adapter import SolarmanAdapter
from .credentials import SolarmanCredentials
from .mapping import POINTS, parse_station_item, station_to_plant

__all__ = ["POINTS", "SolarmanAdapter", "SolarmanCredentials", "parse_station_item", "station_to_plant"]

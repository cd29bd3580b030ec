"""Selectronic select.live: the adapter, its credentials and the hfdata mapping."""

from .adapter import SelectronicAdapter
from .credentials import SelectronicCredentials
from .mapping import POINTS, is_login_page, parse_hfdata, parse_login

__all__ = ["POINTS", "SelectronicAdapter", "SelectronicCredentials", "is_login_page", "parse_hfdata", "parse_login"]

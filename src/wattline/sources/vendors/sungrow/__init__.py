"""Sungrow iSolarCloud: the adapter, its credentials and the answer mapping."""

from .adapter import SungrowAdapter
from .credentials import SungrowCredentials
from .mapping import (
    POINTS,
    check_envelope,
    count_point_data,
    local_stamp,
    parse_login,
    parse_point_data,
    parse_ps_list_item,
    parse_stamp,
)

__all__ = [
    "POINTS",
    "SungrowAdapter",
    "SungrowCredentials",
    "check_envelope",
    "count_point_data",
    "local_stamp",
    "parse_login",
    "parse_point_data",
    "parse_ps_list_item",
    "parse_stamp",
]

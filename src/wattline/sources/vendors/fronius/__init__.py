"""Fronius: the push endpoint's document (:mod:`.push`) and the local Solar API poller."""

from .adapter import FroniusAdapter
from .credentials import FroniusCredentials
from .mapping import check_envelope, parse_archive, parse_instant, parse_power_flow
from .points import LOCAL_POINTS, POINTS, PUSH_POINTS
from .push import SOURCE, FroniusPush, PushError, parse_push, push_record, push_values, raw_payload

__all__ = [
    "LOCAL_POINTS",
    "POINTS",
    "PUSH_POINTS",
    "SOURCE",
    "FroniusAdapter",
    "FroniusCredentials",
    "FroniusPush",
    "PushError",
    "check_envelope",
    "parse_archive",
    "parse_instant",
    "parse_power_flow",
    "parse_push",
    "push_record",
    "push_values",
    "raw_payload",
]

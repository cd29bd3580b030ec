"""Strict number parsing for vendor payloads: a bad value raises with a readable reason."""

from __future__ import annotations

import math
from typing import Any


class BadValue(ValueError):
    """A vendor value that is missing, null or not a finite number."""


def to_number(value: Any, field: str) -> float:
    """``value`` as a finite float; numeric strings are accepted (vendors send both)."""
    kind = type(value)
    if kind is float or kind is int:  # fast path: the common case
        if math.isfinite(value):
            return float(value)
        raise BadValue(f"{field} is not finite: {value!r}")
    if value is None:
        raise BadValue(f"{field} is null")
    if isinstance(value, bool):
        raise BadValue(f"{field} is a boolean, not a number")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)  # float() ignores surrounding whitespace
        except ValueError:
            raise BadValue(f"{field} is not numeric: {value[:40]!r}") from None
    else:
        raise BadValue(f"{field} has type {type(value).__name__}, not a number")
    if not math.isfinite(number):
        raise BadValue(f"{field} is not finite: {value!r}")
    return number

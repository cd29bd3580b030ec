"""The one clock every "now" in Wattline comes from.

Real time by default. ``WATTLINE_CLOCK=2026-03-29T18:45:00Z`` starts the clock at that
instant; it then ticks at real speed, so the demo and the whole test suite can run as
if it were 18:45 UTC, 23:30 UTC or a DST-change day. The first read turns the setting
into ``WATTLINE_CLOCK_OFFSET_S`` in the environment, so child processes (the emulated
vendor clouds, a killed-and-restarted backfill) tick on the same clock. Tests move it
with :func:`set_now`.

Domain functions never read the clock: they take ``now`` (epoch seconds) as an
argument; this module is where callers get it.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone

_OFFSET_ENV = "WATTLINE_CLOCK_OFFSET_S"
_START_ENV = "WATTLINE_CLOCK"
_offset_s: float | None = None


def _parse_instant(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError(f"{_START_ENV} needs an offset or Z: {text!r}")
    return dt.timestamp()


def _offset() -> float:
    global _offset_s
    if _offset_s is None:
        if os.environ.get(_OFFSET_ENV):
            _offset_s = float(os.environ[_OFFSET_ENV])
        elif os.environ.get(_START_ENV):
            _offset_s = _parse_instant(os.environ[_START_ENV]) - time.time()
            os.environ[_OFFSET_ENV] = repr(_offset_s)
        else:
            _offset_s = 0.0
    return _offset_s


def now() -> float:
    """Current instant, epoch seconds (float)."""
    return time.time() + _offset()


def now_s() -> int:
    """Current instant, whole epoch seconds."""
    return int(now())


def now_dt() -> datetime:
    """Current instant as an aware UTC datetime."""
    return datetime.fromtimestamp(now(), timezone.utc)


def set_now(instant: datetime | float | None) -> None:
    """Make the clock read ``instant`` now and tick on from there; ``None`` = real time.

    Also exported to the environment so processes started afterwards share it.
    """
    global _offset_s
    if instant is None:
        _offset_s = 0.0
        os.environ.pop(_OFFSET_ENV, None)
        return
    ts = instant.timestamp() if isinstance(instant, datetime) else float(instant)
    _offset_s = ts - time.time()
    os.environ[_OFFSET_ENV] = repr(_offset_s)

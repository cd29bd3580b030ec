"""Running Wattline's long-lived asyncio loops (``wattline poll``, ``wattline worker``).

On uvloop's event loop when it is installed (a dependency; `wattline serve` gets it
through uvicorn): the poller is event-loop bound, thousands of HTTP calls in flight,
and uvloop's loop and transports cost less CPU per call than the standard loop's.
"""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")


def loop_factory():
    """uvloop's ``new_event_loop`` if importable, else None (asyncio's default)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)`` on the fastest event loop available."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)

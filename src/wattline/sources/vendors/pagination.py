"""Pagination and range-splitting helpers for vendor history calls."""

from __future__ import annotations

from typing import Any, Awaitable, Callable


def split_range(start_ts: int, end_ts: int, max_range_s: int) -> list[tuple[int, int]]:
    """``[start_ts, end_ts)`` as consecutive windows of at most ``max_range_s`` seconds."""
    return [(a, min(a + max_range_s, end_ts)) for a in range(start_ts, end_ts, max_range_s)]


async def all_pages(fetch_page: Callable[[int], Awaitable[tuple[list[Any], int]]], *,
                    first: int = 1) -> list[Any]:
    """Every item of a numbered-page listing.

    ``fetch_page(page)`` returns ``(items, total)``, where ``total`` is the number
    of items the vendor says the whole listing holds. Stops at an empty page or once
    ``total`` items have been seen.
    """
    out: list[Any] = []
    page = first
    while True:
        items, total = await fetch_page(page)
        out.extend(items)
        if not items or len(out) >= total:
            return out
        page += 1

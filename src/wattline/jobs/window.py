"""Seed 000's 31-day window, now refreshed by the roll-up stage (``pipeline.rollup``).

These names stay for the jobs that call them after a sync or a backfill.
"""

from __future__ import annotations

from wattline.pipeline.rollup import WINDOW_S
from wattline.pipeline.rollup import expire_window as expire
from wattline.pipeline.rollup import refresh_window as refresh

__all__ = ("WINDOW_S", "expire", "refresh")

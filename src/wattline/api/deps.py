"""Shared request helpers for the routers."""

from __future__ import annotations

from fastapi import Request

from wattline.context import AppContext
from wattline.security.errors import ApiError
from wattline.store import plant_queries


def ctx(request: Request) -> AppContext:
    return request.app.state.ctx


def plant_or_404(request: Request, plant_id: int) -> dict:
    p = plant_queries.plant(ctx(request).dbs.main_reader, plant_id)
    if p is None:
        raise ApiError(404, "not_found", f"no plant with id {plant_id}", {"plant_id": plant_id})
    return p

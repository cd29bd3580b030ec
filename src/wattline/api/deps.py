"""Shared request helpers for the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request

from wattline.context import AppContext
from wattline.domain import timeutil
from wattline.security.errors import ApiError
from wattline.store import plant_queries


# database ids are 32-bit: a larger number in a URL is a 400, not a driver overflow
MAX_ID = 2_147_483_647
PlantId = Annotated[int, Path(ge=1, le=MAX_ID, description="the plant's asset id")]
WorkOrderId = Annotated[int, Path(ge=1, le=MAX_ID, description="the work order's group id")]
OptionalId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
Hours = Annotated[int, Query(ge=1, le=744, description="window ending now, in hours (at most 31 days)")]
Days = Annotated[int, Query(ge=1, le=366, description="window ending today, in local days")]


def ctx(request: Request) -> AppContext:
    return request.app.state.ctx


def plant_or_404(request: Request, plant_id: int) -> dict:
    p = plant_queries.plant(ctx(request).dbs.main_reader, plant_id)
    if p is None:
        raise ApiError(404, "not_found", f"no plant with id {plant_id}", {"plant_id": plant_id})
    return p


def latest_of(request: Request, plant: dict) -> dict[str, dict]:
    """Newest reading per point key of ``plant``, from the configured latest-value store."""
    series = plant["series"]
    got = ctx(request).latest_values.read(plant["id"], list(series.values()))
    out = {}
    for key, sid in sorted(series.items()):
        v = got.get(sid)
        if v is not None:
            out[key] = {"seriesId": sid, "ts": timeutil.iso(v.ts), "value": v.value}
    return out

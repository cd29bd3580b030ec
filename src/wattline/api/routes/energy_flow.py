"""Energy flows of a system or a composite, for the Sankey chart (seed 003's EnergyFlowSankey).

``GET /api/data/flows?systemId=N | composite=<slug or id>&range=now|1H|6H|24H|7D|30D``
answers ``{"unit": "W" | "Wh", "flows": [{"from", "to", "value"}, ...]}`` with every
pair of :data:`wattline.domain.energy_flow.FLOWS` (zeros kept), plus the window, the
instant of the values used and the imbalance of the inputs.

* ``now``: the latest values (``ctx.latest_values``: Redis, else the database) of
  the points ``solar_w`` (or ``power``), ``load_w``, ``battery_w``, ``grid_w``, in W.
* a range: the ledger energies of the same points (the pipeline integrates power),
  per bucket of 60 s (1H, 6H) or 300 s (24H, 7D, 30D), each bucket split on its
  own and summed, in Wh. The split of a whole stored local day is kept in memory
  (:class:`DayFlowCache`) while that day's aggregate rows are unchanged, so 30 days
  read the ledger of the partial first and last days only.

A composite is split member by member and the flows added: one member's solar never
feeds another member's load. Every member's ``battery_w`` is + discharging (one sign,
mapped by the adapters: :func:`wattline.domain.energy_flow.battery_convention`).

Access: a system the caller may not read, and a composite the caller may not read
(:func:`wattline.system_admin.can_read_composite`: its owner, an admin, or who reads
every member), answer 404 (existence not revealed).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from wattline import clock
from wattline.api import schemas as S
from wattline.api.composite_access import readable_composite
from wattline.api.deps import MAX_ID, ctx
from wattline.domain import energy_flow as ef
from wattline.security.deps import require_role
from wattline.security.errors import ApiError
from wattline.security.principal import Principal
from wattline.security.system_access import can_read_system
from wattline.store import flow_queries, systems_repo

router = APIRouter(tags=["systems"], responses=S.errors(401, 403))

RANGES_S = {"1H": 3600, "6H": 6 * 3600, "24H": 86400, "7D": 7 * 86400, "30D": 30 * 86400}
FlowRange = Literal["now", "1H", "6H", "24H", "7D", "30D"]
FLOW_KEYS = tuple(k for keys in ef.POINT_KEYS.values() for k in keys)


def bucket_s_for(range_s: int) -> int:
    """Sub-interval that each range is split in: 60 s up to 6 hours, 300 s beyond (a
    battery rarely turns round twice in 5 minutes; measured: 5-minute buckets read a
    day's ledger in a third of the time of 1-minute ones)."""
    return 60 if range_s <= 6 * 3600 else 300


class FlowOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from", description="solar | battery | grid")
    to: str = Field(description="load | battery | grid")
    value: float = Field(description="W (range=now) or Wh (a range), >= 0")


class FlowsOut(BaseModel):
    unit: Literal["W", "Wh"]
    flows: list[FlowOut] = Field(description="every pair, zeros kept; empty when the terms are not known "
                                             "(a system with only solar, say)")
    range: str
    start: int | None = Field(description="window start, epoch s (None for now)")
    end: int = Field(description="window end (now), epoch s")
    asOf: int | None = Field(description="range=now: the oldest latest value used, epoch s")
    imbalance: float = Field(description="sources minus sinks of the inputs, same unit (0 when they balance)")
    systemIds: list[int]
    compositeId: int | None = None


def _readable_systems(request: Request, principal: Principal, system_id: int | None,
                      composite: str | None) -> tuple[list[int], int | None]:
    if (system_id is None) == (composite is None):
        raise ApiError(400, "invalid_parameter", "give exactly one of systemId and composite",
                       {"parameters": ["systemId", "composite"]})
    with ctx(request).dbs.main_reader.connect() as conn:
        if system_id is not None:
            s = systems_repo.system(conn, system_id)
            if s is None or not can_read_system(principal, s):
                raise ApiError(404, "not_found", f"no system with id {system_id}", {"system_id": system_id})
            return [system_id], None
        g = readable_composite(conn, principal, composite)
    if g is None:
        raise ApiError(404, "not_found", f"no composite {composite!r}", {"composite": composite})
    return [m["id"] for m in g["members"]], g["id"]


def _now_split(request: Request, system_id: int, series: dict[str, int], battery_positive: str
               ) -> tuple[ef.FlowSplit | None, int | None]:
    got = ctx(request).latest_values.read(system_id, list(series.values()))
    by_key = {k: got[sid] for k, sid in series.items() if sid in got}
    terms = ef.pick_terms({k: v.value * 1000.0 for k, v in by_key.items()})  # kW -> W
    split = ef.power_flows_w(terms["solar"], terms["load"], terms["battery"], terms["grid"], battery_positive)
    as_of = min((v.ts for v in by_key.values()), default=None)
    return split, as_of


def _window_split(request: Request, series: dict[str, int], start_s: int, end_s: int, bucket_s: int,
                  battery_positive: str) -> ef.FlowSplit | None:
    """Flows of ``(start_s, end_s]`` from the ledger, split per bucket and summed (Wh)."""
    n = -(-(end_s - start_s) // bucket_s)
    rows = flow_queries.bucket_energies_milli_wh(ctx(request).dbs.telemetry, list(series.values()),
                                                 start_s, end_s, bucket_s)
    term_of: dict[int, str] = {}
    for term, keys in ef.POINT_KEYS.items():
        sid = next((series[k] for k in keys if k in series), None)
        if sid is not None:
            term_of[sid] = term
    cols = {t: np.full(n, np.nan) for t in ef.POINT_KEYS}
    for sid, b, milli_wh in rows:
        if sid in term_of and 0 <= b < n:
            cols[term_of[sid]][b] = milli_wh / 1000.0  # milli-Wh -> Wh
    if "battery" not in term_of.values():
        cols["battery"][:] = 0.0  # no battery point: no battery
    seen = ~(np.isnan(cols["solar"]) & np.isnan(cols["load"]) & np.isnan(cols["grid"]))
    if not seen.any():
        return None
    return ef.energy_flows_wh(cols["solar"][seen], cols["load"][seen], cols["battery"][seen], cols["grid"][seen],
                              battery_positive)


class DayFlowCache:
    """Splits of whole stored local days, keyed by the system's series and the day, and
    valid while the day's fingerprint (:func:`flow_queries.full_days`) is unchanged: a
    day that gained or re-derived a reading is split again. Bounded (oldest out)."""

    def __init__(self, max_days: int = 100_000):
        self._lock = threading.Lock()
        self._days: OrderedDict = OrderedDict()
        self.max_days = max_days

    def get(self, key, fingerprint) -> ef.FlowSplit | None | bool:
        with self._lock:
            hit = self._days.get(key)
            if hit is None or hit[0] != fingerprint:
                return False
            self._days.move_to_end(key)
            return hit[1]

    def put(self, key, fingerprint, split: ef.FlowSplit | None) -> None:
        with self._lock:
            self._days[key] = (fingerprint, split)
            self._days.move_to_end(key)
            while len(self._days) > self.max_days:
                self._days.popitem(last=False)


def _day_cache(request: Request) -> DayFlowCache:
    cache = getattr(request.app.state, "flow_day_cache", None)
    if cache is None:
        cache = request.app.state.flow_day_cache = DayFlowCache()
    return cache


def _range_split(request: Request, series: dict[str, int], start_s: int, end_s: int, battery_positive: str
                 ) -> ef.FlowSplit | None:
    """Flows of the window: whole stored local days from the day cache (split again when
    their readings changed), the rest from the ledger."""
    if not series:
        return None
    bucket_s = bucket_s_for(end_s - start_s)
    cache = _day_cache(request)
    who = (tuple(sorted(series.items())), battery_positive, bucket_s)
    pieces: list[ef.FlowSplit | None] = []
    cursor = start_s
    for day_start, day_end, fingerprint in flow_queries.full_days(ctx(request).dbs.telemetry,
                                                                  list(series.values()), start_s, end_s):
        if day_start < cursor:
            continue
        if day_start > cursor:
            pieces.append(_window_split(request, series, cursor, day_start, bucket_s, battery_positive))
        key = (who, day_start, day_end)
        split = cache.get(key, fingerprint)
        if split is False:
            split = _window_split(request, series, day_start, day_end, bucket_s, battery_positive)
            cache.put(key, fingerprint, split)
        pieces.append(split)
        cursor = day_end
    if cursor < end_s:
        pieces.append(_window_split(request, series, cursor, end_s, bucket_s, battery_positive))
    got = [p for p in pieces if p is not None]
    return ef.add_splits(got) if got else None


@router.get("/api/data/flows", responses=S.errors(400, 404))
def energy_flows(request: Request, principal: Annotated[Principal, Depends(require_role("viewer"))],
                 system_id: Annotated[int | None, Query(alias="systemId", ge=1, le=MAX_ID)] = None,
                 composite: Annotated[str | None, Query(min_length=1, max_length=64,
                                                        description="a composite's slug or id")] = None,
                 range_: Annotated[FlowRange, Query(alias="range")] = "now") -> FlowsOut:
    """Flows solar→load/battery/grid, battery→load/grid, grid→load/battery of a system or
    a composite: now (W, latest values) or over the last 1H…30D (Wh, from the ledger)."""
    ids, composite_id = _readable_systems(request, principal, system_id, composite)
    with ctx(request).dbs.main_reader.connect() as conn:
        series_of = flow_queries.flow_points(conn, ids, FLOW_KEYS)
    end_s = clock.now_s()
    start_s = None if range_ == "now" else end_s - RANGES_S[range_]
    splits: list[ef.FlowSplit] = []
    as_of: list[int] = []
    for sid in ids:
        convention = ef.STORED_BATTERY_POSITIVE  # one sign, whatever the vendor
        if start_s is None:
            split, ts = _now_split(request, sid, series_of.get(sid, {}), convention)
            if ts is not None and split is not None:
                as_of.append(ts)
        else:
            split = _range_split(request, series_of.get(sid, {}), start_s, end_s, convention)
        if split is not None:
            splits.append(split)
    total = ef.add_splits(splits) if splits else None
    return FlowsOut(unit="W" if start_s is None else "Wh",
                    flows=[FlowOut(**f) for f in ef.flow_list(total)], range=range_, start=start_s, end=end_s,
                    asOf=min(as_of) if as_of else None,
                    imbalance=round(total.imbalance, 3) if total is not None else 0.0,
                    systemIds=ids, compositeId=composite_id)

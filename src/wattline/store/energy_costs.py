"""Cost on read: the ledger entries of a range priced by their assets' tariffs.

Nothing priced is stored. A bucket's cost is computed from the ledger entries it
overlaps each time it is read (``domain.cost.bucket_costs``), with the versions in
the registry at that moment; so adding a version re-prices every figure it covers —
cards, charts, exports, of every period — by construction, and there is no stored
cost to get out of step, nor a re-pricing job to run or to fail half-way.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine

from wattline.domain import buckets as B
from wattline.domain.cost import BucketCost, Tariff, bucket_costs
from wattline.store import cost_versions_repo, groups_repo, summaries_repo

# a member's energy series, by preference: a metered counter, interval energy, power
_ENERGY_TYPES = ("counter", "interval_energy", "power")


def series_costs(telemetry: Engine | Connection, tariffs: dict[int, Tariff], period: str,
                 wanted: list[tuple[int, int]], tz: str) -> list[BucketCost]:
    """Cost of each wanted bucket (``buckets.bucket_range(period, ..., tz)``) summed
    over the series of ``tariffs`` (series id -> its asset's tariff)."""
    if not wanted:
        return []
    start, end = wanted[0][0], wanted[-1][1]
    if isinstance(telemetry, Connection):
        entries = summaries_repo.ledger_entries(telemetry, sorted(tariffs), start, end)
    else:
        with telemetry.connect() as conn:
            entries = summaries_repo.ledger_entries(conn, sorted(tariffs), start, end)
    return bucket_costs(entries, tariffs, tz, period, wanted)


def energy_series_of_assets(telemetry: Engine, asset_ids: list[int]) -> dict[int, int]:
    """One energy series per asset (series id -> asset id): its counter if it has one
    (``energy_total`` first), else interval energy, else power — never two, so a
    member's energy is not counted twice."""
    with telemetry.connect() as conn:
        rows = summaries_repo.series_of_assets(conn, asset_ids)
    best: dict[int, tuple] = {}
    for aid, key, sid, _tz, _vid, mt in rows:
        if mt not in _ENERGY_TYPES:
            continue
        rank = (_ENERGY_TYPES.index(mt), key != "energy_total", sid)
        if aid not in best or rank < best[aid][0]:
            best[aid] = (rank, sid)
    return {sid: aid for aid, (_rank, sid) in best.items()}


def group_costs(main_reader: Engine, telemetry: Engine, group_id: int, period: str, start_ts: int,
                end_ts: int) -> tuple[str, list[BucketCost]] | None:
    """A group's (classroom's, work order's) cost per ``period`` of its own zone over
    [start_ts, end_ts): the sum of its members' costs, each member priced by its own
    tariff. Returns (the group's zone, buckets), or None if there is no such group."""
    with main_reader.connect() as mconn:
        g = groups_repo.group(mconn, group_id)
        if g is None:
            return None
        series = energy_series_of_assets(telemetry, g.member_ids)
        tariffs = cost_versions_repo.tariffs_for_series(mconn, series)
    wanted = B.bucket_range(period, start_ts, end_ts, g.timezone)
    return g.timezone, series_costs(telemetry, tariffs, period, wanted, g.timezone)

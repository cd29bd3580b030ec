"""The registry's configuration of each series (main database): what the pipeline
needs to know about a point and its asset, and the one way to change a point's rules.

The pipeline reads through its read-only handle (``main_reader``); changes go
through ``main`` (administration), and the pipeline sees them from its next batch
(``pipeline.series.SeriesCatalog`` re-reads a config that is a few seconds old).
"""

from __future__ import annotations

from typing import Iterable

from sqlalchemy import Connection, Engine, select, update

from wattline.store import bulk
from wattline.store.registry import RegistryError
from wattline.store.tables import points

# the order of the tuples read_configs returns
CONFIG_COLUMNS = (
    "series_id", "asset_id", "asset_kind", "point_key", "metric_type", "timezone", "vendor_plant_id",
    "reset_ratio", "wrap_kwh", "expected_interval_s", "plausible_min", "plausible_max", "gate_series_id",
)
# the point columns update_point_rules may set
POINT_RULE_COLUMNS = ("reset_ratio", "wrap_kwh", "expected_interval_s", "plausible_min", "plausible_max")

_CONFIG_SQL = """
    SELECT p.id, p.asset_id, a.kind, p.key, p.metric_type, a.timezone, a.vendor_plant_id, p.reset_ratio,
           p.wrap_kwh, p.expected_interval_s, p.plausible_min, p.plausible_max,
           CASE WHEN p.metric_type IN ('counter', 'power') THEN
             (SELECT g.id FROM points g WHERE g.asset_id = p.asset_id AND g.key = 'switch_state' AND g.id <> p.id)
           END
    FROM points p JOIN assets a ON a.id = p.asset_id
    WHERE p.id IN ({ids})
"""


def read_configs(main_reader: Engine, ids: Iterable[int]) -> list[tuple]:
    """The configuration of each known series id, as tuples in ``CONFIG_COLUMNS`` order
    (unknown ids are left out). One query on the registry's primary key, the ids
    inlined as integer literals (no statement to compile, no parameter limit)."""
    wanted = sorted({int(i) for i in ids})
    if not wanted:
        return []
    with main_reader.connect() as conn:
        return bulk.fetch_rows(conn, _CONFIG_SQL.format(ids=",".join(map(str, wanted))))


def update_point_rules(conn: Connection, series_id: int, **changes) -> None:
    """Change a point's rules (any of ``POINT_RULE_COLUMNS``; None clears an optional
    one: no wrap, the metric's default plausible range). Running pipelines apply the
    new rules from their next batch on; stored data is not re-derived."""
    unknown = set(changes) - set(POINT_RULE_COLUMNS)
    if unknown:
        raise RegistryError(f"not a point rule: {', '.join(sorted(unknown))} "
                            f"(one of {', '.join(POINT_RULE_COLUMNS)})")
    row = conn.execute(select(points.c.plausible_min, points.c.plausible_max)
                       .where(points.c.id == int(series_id))).first()
    if row is None:
        raise RegistryError(f"no point with series id {series_id}")
    lo = changes.get("plausible_min", row[0])
    hi = changes.get("plausible_max", row[1])
    if lo is not None and hi is not None and lo > hi:
        raise RegistryError(f"plausible_min {lo} is above plausible_max {hi}")
    ratio = changes.get("reset_ratio")
    if "reset_ratio" in changes and not (ratio is not None and 0 < ratio <= 1):
        raise RegistryError(f"reset_ratio must be in (0, 1], not {ratio!r}")
    interval = changes.get("expected_interval_s")
    if "expected_interval_s" in changes and not (interval is not None and interval > 0):
        raise RegistryError(f"expected_interval_s must be a positive number of seconds, not {interval!r}")
    wrap = changes.get("wrap_kwh")
    if wrap is not None and not wrap > 0:
        raise RegistryError(f"wrap_kwh must be positive (or None: no wrap), not {wrap!r}")
    if changes:
        conn.execute(update(points).where(points.c.id == int(series_id)).values(**changes))

"""``simulator_state`` (telemetry database) and the stored readings the simulator
checks on restart: the implementation of
:class:`wattline.simulator.ports.SimulatorStateRepository`."""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from sqlalchemy import Engine, func, select

from wattline.store import bulk
from wattline.store.tables import readings, simulator_state

_STATE_COLUMNS = ("site_key", "state", "last_ts", "updated_at")


class SimulatorStateRepo:
    def __init__(self, telemetry: Engine):
        self._engine = telemetry

    def save(self, states: Sequence[Any]) -> None:
        rows = [(s.site_key, json.dumps(dict(s.document)), s.last_ts, s.updated_at) for s in states]
        if rows:
            with self._engine.begin() as conn:
                bulk.upsert(conn, simulator_state, _STATE_COLUMNS, rows, key=("site_key",))

    def load(self, site_keys: Iterable[str]) -> dict[str, Any]:
        keys = sorted(set(site_keys))
        if not keys:
            return {}
        with self._engine.connect() as conn:
            rows = conn.execute(select(simulator_state.c.site_key, simulator_state.c.state)
                                .where(simulator_state.c.site_key.in_(keys))).all()
        out: dict[str, Any] = {}
        for key, doc in rows:
            if isinstance(doc, str):
                try:
                    doc = json.loads(doc)
                except ValueError:
                    pass  # the caller reports it unreadable
            out[key] = doc
        return out

    def newest_reading_ts(self, series_ids: Iterable[int]) -> dict[int, int]:
        ids = sorted({int(i) for i in series_ids})
        if not ids:
            return {}
        q = (select(readings.c.series_id, func.max(readings.c.ts)).where(readings.c.series_id.in_(ids))
             .group_by(readings.c.series_id))
        with self._engine.connect() as conn:
            return {int(sid): int(ts) for sid, ts in conn.execute(q) if ts is not None}

    def values_at(self, series_ids: Iterable[int], ts: int) -> dict[int, float]:
        ids = sorted({int(i) for i in series_ids})
        if not ids:
            return {}
        q = select(readings.c.series_id, readings.c.value).where(readings.c.ts == int(ts),
                                                                 readings.c.series_id.in_(ids))
        with self._engine.connect() as conn:
            return {int(sid): float(v) for sid, v in conn.execute(q)}

"""What the simulator service is given: it never imports the store.

* :class:`SiteRegistrar` -- registers a simulated site and its points (the
  provisioning service, :class:`wattline.provisioning.SiteProvisioner`);
* :class:`SimulatorStateRepository` -- keeps each site's saved state and reads back
  what was stored (``wattline.store.simulator_state_repo``);
* a pipeline with ``ingest(batch, refresh_summaries=...)``, the one writer of telemetry.

``wattline simulate`` wires them (``cli_simulate.simulator_ports``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping, Protocol, Sequence

from wattline.domain.sources import PointDefinition


class SiteRegistrar(Protocol):
    def ensure_site(self, name: str, timezone: str, points: Iterable[PointDefinition], *,
                    latitude: float | None = None, longitude: float | None = None,
                    capacity_kw: float | None = None) -> dict[str, int]:
        """Find or create the site asset and its points; point key -> series id."""
        ...


@dataclass(frozen=True)
class SavedState:
    """One site's state document as saved (``last_ts`` UTC epoch s, ``updated_at`` aware UTC)."""

    site_key: str
    document: Mapping[str, Any]
    last_ts: int | None
    updated_at: datetime


class SimulatorStateRepository(Protocol):
    def save(self, states: Sequence[SavedState]) -> None:
        """Upsert the states (one transaction)."""
        ...

    def load(self, site_keys: Iterable[str]) -> dict[str, Any]:
        """Site key -> saved document (as stored: a dict, or text that failed to parse)."""
        ...

    def newest_reading_ts(self, series_ids: Iterable[int]) -> dict[int, int]:
        """Series id -> UTC epoch s of its newest stored reading (series with readings only)."""
        ...

    def values_at(self, series_ids: Iterable[int], ts: int) -> dict[int, float]:
        """Series id -> stored value at ``ts`` (series with a reading then only)."""
        ...


class Pipeline(Protocol):
    def ingest(self, batch: Any, *, refresh_summaries: bool = ...) -> Any: ...


@dataclass
class SimulatorPorts:
    pipeline: Pipeline
    sites: SiteRegistrar
    state: SimulatorStateRepository

"""Simulator: a PV, battery, load and weather world that runs live or replays history.

Everything is deterministic: a site's history is a pure function of its
:class:`SiteSpec` (whose ``seed`` drives the weather and noise) and time, so any
window can be generated on its own and overlapping windows agree.

Entry points
------------
* :func:`default_sites` -- a varied fleet across latitudes and both hemispheres.
* :func:`replay` / :class:`ReplayRun` -- vectorised simulation of a period.
* :class:`LiveSimulator` -- one reading per site per interval, stateful.
* :func:`plant_history` -- power and energy curves of a PV-only vendor plant.
* :data:`METRICS` -- every metric a site reports, with its type and unit.
"""

from wattline.simulator.battery import BatteryState
from wattline.simulator.engine import COUNTERS, METRICS, Fleet, MetricSpec, SiteState
from wattline.simulator.live import LiveSimulator, SiteSample, StepResult
from wattline.simulator.plant import plant_history
from wattline.simulator.replay import ReplayChunk, ReplayResult, ReplayRun, replay, step_grid
from wattline.simulator.sites import (
    BatterySpec,
    ClimateSpec,
    LoadSpec,
    SiteKind,
    SiteSpec,
    default_sites,
)
from wattline.simulator.weather import OfflineWeather

__all__ = [
    "BatterySpec",
    "BatteryState",
    "COUNTERS",
    "ClimateSpec",
    "Fleet",
    "LiveSimulator",
    "LoadSpec",
    "METRICS",
    "MetricSpec",
    "OfflineWeather",
    "ReplayChunk",
    "ReplayResult",
    "ReplayRun",
    "SiteKind",
    "SiteSample",
    "SiteSpec",
    "SiteState",
    "StepResult",
    "default_sites",
    "plant_history",
    "replay",
    "step_grid",
]

"""The emulated vendor clouds as one FastAPI app: every vendor under its real paths."""

from __future__ import annotations

from fastapi import FastAPI, Request

from . import amber, enphase, fronius, mondo, selectronic, solaredge, solarman, sungrow
from .config import CloudConfig
from .history import warm
from .state import CloudState

VENDORS = ("solarman", "sungrow")


def create_app(config: CloudConfig | None = None) -> FastAPI:
    """A new app with its own state (tokens, faults, counters) at ``app.state.cloud``."""
    config = config or CloudConfig()
    app = FastAPI(
        title="Wattline emulated vendor clouds",
        description="Solarman and Sungrow iSolarCloud APIs on loopback, for tests and demos.",
        version="1",
    )
    app.state.cloud = state = CloudState(config)
    if config.warm_plants:
        for vendor in VENDORS:
            for plant_id, profile in state.settings(vendor).plants.items():
                warm(plant_id, state.plant(vendor, plant_id) or profile, state.now(), config.history_source)
    app.include_router(solarman.router, tags=["solarman"])
    app.include_router(sungrow.router, tags=["sungrow"])
    enphase.install(app)  # its own settings on app.state.enphase (OAuth server, plan limits)
    amber.install(app)  # its own settings on app.state.amber (API keys, 50 requests / 5 min)
    app.include_router(selectronic.router, tags=["selectronic"])  # settings: selectronic.install
    app.include_router(solaredge.router, tags=["solaredge"])  # settings: solaredge.install
    app.include_router(fronius.router, tags=["fronius"])  # settings: fronius.install
    app.include_router(mondo.router, tags=["mondo"])  # settings: mondo.install

    if config.bench_mode:
        _lift_quotas(app)

    @app.get("/_emulator/health", tags=["emulator"])
    async def health() -> dict:
        return {"status": "ok", "vendors": list(VENDORS), "latencyMs": config.latency_ms,
                "benchMode": config.bench_mode}

    @app.get("/_emulator/stats", tags=["emulator"])
    async def stats(request: Request) -> dict:
        """Call counters (by vendor, endpoint and status), faults injected and refusals so far."""
        state: CloudState = request.app.state.cloud
        counts: dict[str, int] = {}
        for c in state.stats.calls:
            key = f"{c.vendor} {c.endpoint} {c.status}"
            counts[key] = counts.get(key, 0) + 1
        return {"calls": counts, "faults": dict(state.stats.faults()), "errors": dict(state.stats.errors())}

    return app


class _AnyId(dict):
    """Configured entries, and a default one (made by ``make``) for any other id."""

    def __init__(self, configured: dict, make) -> None:
        super().__init__(configured)
        self._make = make

    def get(self, key, default=None):
        if key in self:
            return self[key]
        return self._make(key) if key else default


def _lift_quotas(app: FastAPI) -> None:
    """Bench mode (load benchmarks only): no vendor quota or plan limit, no scheduled
    outage, any Enphase system / Amber site id served (see :mod:`.config`)."""
    from .config import default_profile

    big = 10**12
    ec = app.state.enphase.settings
    ec.calls_per_minute = ec.calls_per_month = big
    ec.systems = _AnyId(ec.systems, default_profile)
    am = app.state.amber.settings
    am.requests_per_window = big
    am.sites = _AnyId(am.sites, lambda _site: amber.AmberSite())
    solaredge.install(app, solaredge.SolarEdgeSettings(daily_quota=big, max_concurrent=big))
    selectronic.install(app, selectronic.SelectronicSettings(outage_minutes=None))
    app.state.cloud.config.rate_limit_per_minute = None

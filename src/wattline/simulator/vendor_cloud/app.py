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

    @app.get("/_emulator/health", tags=["emulator"])
    async def health() -> dict:
        return {"status": "ok", "vendors": list(VENDORS)}

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

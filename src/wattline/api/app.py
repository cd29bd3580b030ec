"""FastAPI application factory."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from wattline import __version__, logs
from wattline.context import AppContext, open_context

log = logs.get("wattline.api")


def create_app(ctx: AppContext | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.ctx = ctx or open_context()  # applies migrations at start
        log.info("api.started", version=__version__)
        yield
        app.state.ctx.close()

    app = FastAPI(title="Wattline", version=__version__, lifespan=lifespan)

    @app.get("/health")
    def health() -> JSONResponse:
        c: AppContext = app.state.ctx
        checks = {}
        for name, engine in (("main", c.dbs.main_reader), ("telemetry", c.dbs.telemetry)):
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                checks[name] = {"status": "ok", "dialect": engine.dialect.name}
            except Exception as exc:  # noqa: BLE001 - report, never raise from a probe
                checks[name] = {"status": "error", "error": type(exc).__name__}
        ok = all(v["status"] == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "degraded", "databases": checks},
                            status_code=200 if ok else 503)

    return app

"""FastAPI application factory: routers, errors, jobs and the sync schedule."""

from __future__ import annotations

import asyncio
import gc
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from wattline import __version__, logs
from wattline.api.errors import install_validation_handler, openapi_without_default_422
from wattline.api.routes import cost_versions, jobs, plants, power_analytics, telemetry
from wattline.api.routes import review
from wattline.api.routes import campus_analytics
from wattline.api.routes import enphase_oauth
from wattline.api.routes import fronius_push
from wattline.api.schemas import HealthReport
from wattline.context import AppContext, open_context
from wattline.jobs.runner import JobRunner
from wattline.security.errors import install_error_handlers
from wattline.store import health_repo

log = logs.get("wattline.api")


def create_app(ctx: AppContext | None = None, *, schedule: bool = False, mqtt: dict | None = None) -> FastAPI:
    """The API. ``schedule=True`` (``wattline serve``) also runs the daily-sync schedule;
    ``mqtt`` (``{"url": ..., "prefix": ..., "group": ...}``) also runs the MQTT ingester."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.ctx = ctx or open_context()  # applies migrations at start
        app.state.runner = JobRunner(app.state.ctx)
        await app.state.runner.recover()  # fails only jobs whose lease expired (dead workers)
        scheduler = None
        from wattline.jobs.poll import Poller

        app.state.poller = Poller(app.state.ctx)  # minute polling: the scheduler's and POST /api/cron/poll's
        if schedule:
            from wattline.jobs.scheduler import build_scheduler

            scheduler = await asyncio.to_thread(build_scheduler, app.state.ctx, app.state.poller)
            scheduler.start()
        ingester = None
        if mqtt and mqtt.get("url"):
            from wattline.jobs.mqtt_ingest import BackgroundIngester

            ingester = BackgroundIngester(app.state.ctx, **mqtt)
            await asyncio.to_thread(ingester.start)
        # Everything loaded by now (pandas, pvlib, SQLAlchemy, pydantic: ~150 k objects) lives
        # as long as the process; freezing it keeps full collections from walking it on every
        # request-driven gen-2 pass (measured: ~90 ms per full collection otherwise, which
        # showed as the p95 of the chart routes).
        gc.collect()
        gc.freeze()
        log.info("api.started", version=__version__, schedule=schedule)
        yield
        if ingester is not None:
            await asyncio.to_thread(ingester.stop)  # the batch in hand is committed and acknowledged
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        await app.state.poller.aclose()
        if ctx is None:
            app.state.ctx.close()

    app = FastAPI(title="Wattline", version=__version__, lifespan=lifespan)
    from wattline.security import csrf, headers
    csrf.install(app)  # unsafe requests with the session cookie need its token (before headers: they wrap it)
    headers.install(app)  # X-Frame-Options, nosniff, Referrer-Policy, CSP on every response
    install_error_handlers(app)
    install_validation_handler(app)
    openapi_without_default_422(app)
    for r in (telemetry.router, plants.router, jobs.router, cost_versions.router, power_analytics.router,
              review.router):
        app.include_router(r)
    app.include_router(campus_analytics.router)
    app.include_router(enphase_oauth.router)
    app.include_router(fronius_push.router)  # POST /api/push/fronius
    from wattline.api.routes import systems as systems_routes
    app.include_router(systems_routes.router)  # /api/data/systems, /api/admin/sessions, /api/cron/poll
    from wattline.api.routes import energy_flow
    app.include_router(energy_flow.router)  # GET /api/data/flows
    from wattline.api.routes import latest_composites
    app.include_router(latest_composites.router)  # /api/data/latest, /api/composite
    from wattline.api.routes import historical
    app.include_router(historical.router)  # /api/data/historical, /api/cron/daily|cleanup, /api/admin/database
    from wattline.api.routes import engine_jobs
    app.include_router(engine_jobs.router)  # /api/admin/engine-jobs (the job engine's queue)
    from wattline.api.routes import admin_systems, setup as setup_routes, setup_enphase
    app.include_router(admin_systems.router)  # /api/admin/systems|users, /api/data/systems/{id}/shares
    app.include_router(setup_routes.router)  # /api/test-connection, /api/setup
    app.include_router(setup_enphase.router)  # /api/setup/enphase (then the OAuth routes)
    _mount_web(app)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        from wattline.jobs.controller_status import export_online_gauges

        export_online_gauges(app.state.ctx.dbs.telemetry)
        from wattline.jobs.engine_status import export_gauges

        export_gauges(app.state.ctx.settings)  # the job engine's queue, when configured
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/health", response_model=HealthReport,
             responses={503: {"model": HealthReport, "description": "A database does not answer"}})
    def health() -> JSONResponse:
        c: AppContext = app.state.ctx
        checks = {name: health_repo.probe(engine)
                  for name, engine in (("main", c.dbs.main_reader), ("telemetry", c.dbs.telemetry))}
        ok = all(v["status"] == "ok" for v in checks.values())
        report = HealthReport(status="ok" if ok else "degraded", databases=checks)
        return JSONResponse(report.model_dump(exclude_none=True), status_code=200 if ok else 503)

    return app


def _mount_web(app: FastAPI) -> None:
    """The dashboard, when its package is present."""
    try:
        from wattline.web.pages import mount
    except ImportError:
        return
    mount(app)
    from wattline.web import pages_cost, pages_review

    pages_cost.mount(app)
    pages_review.mount(app)  # /review
    from wattline.web.pages_campus import mount as mount_campus_pages
    mount_campus_pages(app)
    from wattline.web.pages_devices import mount as mount_devices

    mount_devices(app)  # /devices, /devices/{esp32_name}/{device_id}
    from wattline.web import pages_admin, pages_systems

    pages_systems.mount(app)  # /systems, /systems/{id}, /composites/{ref}, /setup
    pages_admin.mount(app)  # /admin/systems, /admin/systems/{id}/points, /admin/sessions, /admin/users, ...

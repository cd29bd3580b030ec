"""Schemathesis fuzzes every API operation from the OpenAPI schema, with every check
it has: no server error, and each answer conforms to the schema — a documented
status code, the documented content type and headers, a body that validates against
the declared response model (errors included: ``{"error", "code", "details"}``), and
an operation that declares authentication refusing a request without it (401)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from helpers import make_sqlite
from test_api import Server
from world import CLOUD_NOW, WorldPlant, cloud_config, make_ctx, set_up
from wattline import clock, provisioning
from wattline.api.app import create_app
from wattline.jobs.backfill import backfill_plant
from wattline.security import tokens
from wattline.simulator.vendor_cloud.server import BackgroundCloud


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    dbs = make_sqlite(tmp)
    ctx = make_ctx(dbs, tmp)
    plants = [WorldPlant(123, "solarman", "64786338", "UTC", CLOUD_NOW - 86400)]
    with BackgroundCloud(cloud_config(plants)) as cloud:
        set_up(ctx, cloud.base_url, plants, work_order=456)
        # a day of data, and the clock at its end: answers carry rows to validate
        asyncio.run(backfill_plant(ctx, 123, now=CLOUD_NOW + 60))
        with ctx.dbs.main.begin() as conn:
            token = tokens.create_token(conn, "fuzz", "viewer")  # viewer: no long jobs get started
            provisioning.add_classroom(conn, "CR-101", "Asia/Kolkata")  # the campus analytics' example classroom
            provisioning.add_device(conn, "ESP01", "light_1", "CR-101")
        clock.now()  # a WATTLINE_CLOCK setting becomes the offset in the environment
        saved = os.environ.get("WATTLINE_CLOCK_OFFSET_S")
        clock.set_now(CLOUD_NOW + 600)
        try:
            with Server(create_app(ctx)) as server:
                yield server.url, token
        finally:
            clock.set_now(None if saved is None else time.time() + float(saved))
    dbs.dispose()


# the schema is the app's own OpenAPI document; the calls go to a real server
SCHEMA = schemathesis.openapi.from_dict(create_app().openapi())
# the stateful checks need links between operations, which this API does not declare
STATELESS = [schemathesis.checks.use_after_free, schemathesis.checks.ensure_resource_availability]
# what a schema cannot say: /api/energy's 'to' must be after 'from' and the point an
# energy series, so a schema-valid request may rightly get a 400 there
SEMANTIC_400 = {"/api/energy": [schemathesis.checks.positive_data_acceptance]}
# campus analytics: a classroom name the registry lacks is a 404, an end before the start
# or a range of too many buckets a 400
SEMANTIC_400.update({f"/api/power-analytics/{p}": [schemathesis.checks.positive_data_acceptance]
                     for p in ("summary", "timeline", "device-breakdown", "monthly", "export-csv")})
# seed 003: exactly one of systemId / composite; systemIds is ids or a composite slug, and
# the point keys must be the systems' own
SEMANTIC_400.update({p: [schemathesis.checks.positive_data_acceptance]
                     for p in ("/api/data/latest", "/api/data/historical", "/api/data/flows")})


def _served_routes(app):
    """(route, full path) of every route, the included routers' too: FastAPI >= 0.16x keeps
    an included router as one entry of ``app.routes``."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # an older FastAPI copies the included routes into app.routes
        return [(r, getattr(r, "path", "")) for r in app.routes]
    return [(c.original_route, c.path) for c in iter_route_contexts(app.routes)]


def test_every_operation_is_fuzzed():
    """Every route the app serves under /api or /health is an operation of the schema."""
    from fastapi.routing import APIRoute

    ops = {(r.ok().method.upper(), r.ok().path) for r in SCHEMA.get_all_operations()}
    served = {(m, path) for route, path in _served_routes(create_app()) if isinstance(route, APIRoute)
              and route.include_in_schema for m in route.methods if path.startswith(("/api", "/health"))}
    assert len(served) > 50 and served <= ops, sorted(served - ops)
    assert ("GET", "/api/telemetry/plant/{plant_id}/latest") in ops
    assert ("POST", "/api/power-analytics/cost-versions") in ops


@SCHEMA.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_conforms_to_the_schema(served, case):
    url, token = served
    case.call_and_validate(base_url=url, headers={"Authorization": f"Bearer {token}"},
                           excluded_checks=STATELESS + SEMANTIC_400.get(case.operation.path, []))

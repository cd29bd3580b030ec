"""Schemathesis fuzzes every API operation from the OpenAPI schema: bad input must get
a 4xx answer, never a server error, and changes nothing it should not."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from test_api import Server
from world import CLOUD_NOW, WorldPlant, cloud_config, make_ctx, set_up
from wattline.api.app import create_app
from wattline.security import tokens
from wattline.store.engines import open_databases
from wattline.store.migrate import upgrade_all
from wattline.simulator.vendor_cloud.server import BackgroundCloud


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    dbs = open_databases(f"sqlite:///{tmp / 'main.db'}", f"sqlite:///{tmp / 'telemetry.db'}")
    upgrade_all(dbs.main, dbs.telemetry)
    ctx = make_ctx(dbs, tmp)
    plants = [WorldPlant(123, "solarman", "64786338", "UTC", CLOUD_NOW - 86400)]
    with BackgroundCloud(cloud_config(plants)) as cloud:
        set_up(ctx, cloud.base_url, plants, work_order=456)
        with ctx.dbs.main.begin() as conn:
            token = tokens.create_token(conn, "fuzz", "viewer")  # viewer: no long jobs get started
        with Server(create_app(ctx)) as server:
            yield server.url, token
    dbs.dispose()


# the schema is the app's own OpenAPI document; the calls go to a real server
SCHEMA = schemathesis.openapi.from_dict(create_app().openapi())


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=SCHEMA.as_strategy())
def test_no_server_errors(served, case):
    url, token = served
    case.call_and_validate(base_url=url, headers={"Authorization": f"Bearer {token}"},
                           checks=[not_a_server_error])

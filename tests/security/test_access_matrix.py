"""The access matrix: every route of the app (API and pages) × principal × resource
answers as its rule's policy says (tests/security/access.py), and no route is without
a rule. Rules come from every ``tests/security/access_rules_*.py`` (one file per helper).

One app, one SQLite pair, principals and resources made once for the module.
"""

from __future__ import annotations

import importlib
import itertools
import re
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.routing import compile_path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the rule files import tests.security.access
    sys.path.insert(0, str(ROOT))

from tests.security.access import (  # noqa: E402
    ALLOW, PRINCIPALS, READERS, RESOURCES, SPARE_USER, USERS, WRITERS, Rule, cases, expected, judge, may_read,
    may_write,
)

from helpers import make_sqlite, session_headers  # noqa: E402
from world import SECRET  # noqa: E402
from wattline import system_admin  # noqa: E402
from wattline.api.app import create_app  # noqa: E402
from wattline.config import Settings  # noqa: E402
from wattline.context import AppContext  # noqa: E402
from wattline.pipeline import Pipeline  # noqa: E402
from wattline.security import tokens  # noqa: E402
from wattline.security.principal import Principal  # noqa: E402
from wattline.security.sessions import issue_session  # noqa: E402
from wattline.security.system_access import can_read_system, can_write_system  # noqa: E402
from wattline.security.users import create_user, get_user_principal  # noqa: E402
from wattline.store import systems_repo  # noqa: E402


PASSWORD = "a long test password"
CRON = "cron-secret-for-the-matrix"
CREDENTIALS = {"app_id": "1", "app_secret": "matrix-secret", "email": "m@example.org", "password": "pw"}
AUTO_METHODS = {"HEAD"}  # answered by Starlette for every GET route


class MatrixSettings(Settings):
    # vendors at the discard port: an allowed connection test fails at once, reaching nothing
    vendor_base_url: str | None = "http://127.0.0.1:9"


def load_rules() -> list[Rule]:
    rules: list[Rule] = []
    for path in sorted((ROOT / "tests" / "security").glob("access_rules_*.py")):
        module = importlib.import_module(f"tests.security.{path.stem}")
        got = getattr(module, "RULES", None)
        assert isinstance(got, list), f"{path.name} must define RULES = [Rule(...), ...]"
        rules.extend(got)
    return rules


RULES = load_rules()


def app_routes(app) -> list[tuple[str, str]]:
    """(method, path template) of every route, included routers flattened."""
    try:
        from fastapi.routing import iter_route_contexts
        routes = list(iter_route_contexts(app.routes))
    except ImportError:  # FastAPI before included-router contexts: app.routes is flat
        routes = list(app.routes)
    out = []
    for r in routes:
        path = getattr(r, "path", None)
        if path is None:
            continue
        for m in sorted(getattr(r, "methods", None) or ()):
            if m not in AUTO_METHODS:
                out.append((m, path))
    return sorted(set(out))


def covers(rule: Rule, method: str, template: str) -> bool:
    if rule.method.upper() != method:
        return False
    regex, _, _ = compile_path(template)
    return bool(regex.match(rule.url(1).split("?", 1)[0]))


class World:
    """The app on fresh SQLite, its principals and resources."""

    def __init__(self, tmp: Path):
        self.dbs = make_sqlite(tmp)
        settings = MatrixSettings(data_dir=tmp / "data", secret_key=SECRET, cron_secret=CRON,
                                  main_url=self.dbs.main.url.render_as_string(hide_password=False),
                                  telemetry_url=self.dbs.telemetry.url.render_as_string(hide_password=False))
        self.ctx = AppContext(settings, self.dbs, Pipeline(self.dbs.telemetry, self.dbs.main_reader))
        self._n = itertools.count(1)
        with self.dbs.main.begin() as conn:
            for name, role in [*USERS.values(), (SPARE_USER, "viewer")]:
                create_user(conn, name, PASSWORD, role)
            self.ingest_token = tokens.create_token(conn, "matrix gateway", "ingest")
            self.cookies = {p: issue_session(settings.encryption_key, get_user_principal(conn, name))
                            for p, (name, _role) in USERS.items()}
        self.systems = {r: self.new_system(r) for r in RESOURCES}

    def new_system(self, resource: str) -> int:
        """A paused system with the resource's owner and shares."""
        owner = "alice" if resource == "own" else "carol"
        n = next(self._n)
        with self.dbs.main.begin() as conn:
            sid = system_admin.add_system(conn, self.ctx.settings, f"{resource} {n}", "solarman", f"site-{n}", owner,
                                          credentials=CREDENTIALS)
            system_admin.set_status(conn, sid, "paused")
            if resource == "shared":
                for user in ("alice", "bob"):
                    system_admin.share_system(conn, sid, user, owner)
        return sid

    def headers(self, principal: str) -> dict[str, str]:
        if principal in self.cookies:
            return session_headers(self.ctx.settings.encryption_key, self.cookies[principal])  # cookie + CSRF token
        if principal == "cron":
            return {"Authorization": f"Bearer {CRON}"}
        if principal == "ingest":
            return {"Authorization": f"Bearer {self.ingest_token}"}
        return {}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("matrix"))
    app = create_app(w.ctx)
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        w.app, w.client = app, client
        yield w
    w.dbs.dispose()


def ask(world: World, rule: Rule, principal: str, system_id: int | None):
    kw = {"json": rule.body} if rule.body is not None else {}
    if rule.form is not None:
        kw = {"data": rule.form}
    r = world.client.request(rule.method, rule.url(system_id), headers=world.headers(principal), **kw)
    world.client.cookies.clear()  # a response's Set-Cookie must not sign the next request in
    return r


def test_every_route_has_a_rule_and_every_rule_a_route(world):
    routes = app_routes(world.app)
    assert len(routes) > 40
    missing = [f"{m} {p}" for m, p in routes if not any(covers(rule, m, p) for rule in RULES)]
    assert not missing, ("routes without an access rule (add them to tests/security/access_rules_<you>.py): "
                         + ", ".join(missing))
    stale = [rule.id for rule in RULES if not any(covers(rule, m, p) for m, p in routes)]
    assert not stale, "rules naming no route: " + ", ".join(stale)


def test_the_harness_agrees_with_system_access():
    """The matrix's own who-reads-what equals wattline.security.system_access."""
    owners = {"own": "alice", "shared": "carol", "foreign": "carol"}
    shares = {"own": frozenset(), "shared": frozenset({"alice", "bob"}), "foreign": frozenset()}
    assert READERS["shared"] >= WRITERS["shared"]
    for p, (name, role) in USERS.items():
        principal = Principal("user", name, role)
        for r in RESOURCES:
            s = {"owner": owners[r], "shared_with": shares[r], "organization_id": 1}
            assert (can_read_system(principal, s), can_write_system(principal, s)) == (may_read(p, r), may_write(p, r))


@pytest.mark.parametrize("rule", RULES, ids=[re.sub(r"\s+", " ", r.id) for r in RULES])
def test_access(world, rule):
    wrong = []
    for principal, resource in cases(rule):
        want = expected(rule.policy, principal, resource or "own")
        sid = None
        if resource is not None:
            sid = world.new_system(resource) if rule.fresh and want == ALLOW else world.systems[resource]
        r = ask(world, rule, principal, sid)
        if not judge(rule.policy, want, r.status_code, r.headers.get("location")):
            wrong.append(f"{principal} on {resource or '-'}: got {r.status_code}, want {want} "
                         f"({r.text[:120]!r})")
    assert not wrong, f"{rule.id} [{rule.policy}]:\n  " + "\n  ".join(wrong)


def test_principals_are_what_they_claim(world):
    """A sanity check on the fixtures: each principal is who the matrix thinks."""
    seen = {}
    for p in PRINCIPALS:
        r = world.client.get("/api/data/systems", headers=world.headers(p))
        seen[p] = r.status_code if r.status_code != 200 else sorted(s["id"] for s in r.json()["systems"])
    s = world.systems
    assert seen["anonymous"] == 401 and seen["cron"] == 403 and seen["ingest"] == 403
    assert seen["owner"] == sorted([s["own"], s["shared"]]) and seen["viewer_shared"] == [s["shared"]]
    assert seen["viewer_plain"] == [] and set(seen["admin"]) >= set(s.values())
    with world.dbs.main_reader.connect() as conn:
        assert systems_repo.system(conn, s["shared"])["shared_with"] == {"alice", "bob"}

"""Every response carries the security headers: API JSON, a page, a static file, a
redirect, a 401, a 404, a validation error, a 405 and an unhandled exception's 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from world import make_ctx
from wattline.api.app import create_app
from wattline.security.headers import CSP, DOCS_CSP, HEADERS, SecurityHeadersMiddleware
from wattline.security.sessions import COOKIE_NAME, issue_session
from wattline.security.users import create_user, get_user_principal

WANT = {"x-frame-options": "DENY", "x-content-type-options": "nosniff",
        "referrer-policy": "strict-origin-when-cross-origin", "content-security-policy": CSP}


@pytest.fixture
def client(sqlite_dbs, tmp_path):
    ctx = make_ctx(sqlite_dbs, tmp_path)
    with sqlite_dbs.main.begin() as conn:
        create_user(conn, "alice", "a long test password", "user")
        cookie = issue_session(ctx.settings.encryption_key, get_user_principal(conn, "alice"))
    app = create_app(ctx)

    @app.get("/boom-for-test", include_in_schema=False)
    def boom():
        raise RuntimeError("secret detail that must not be sent")

    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as c:
        c.alice = {"Cookie": f"{COOKIE_NAME}={cookie}"}
        yield c


def has_headers(r, csp: str = CSP) -> bool:
    return all(r.headers.get(k) == (csp if k == "content-security-policy" else v) for k, v in WANT.items())


def test_every_kind_of_response_carries_the_headers(client):
    answers = {
        "api json": client.get("/api/data/systems", headers=client.alice),
        "health": client.get("/health"),
        "page": client.get("/", headers=client.alice),
        "login page": client.get("/login"),
        "static": client.get("/static/app.js"),
        "redirect": client.get("/"),
        "401": client.get("/api/data/systems"),
        "404 route": client.get("/api/no-such-route"),
        "404 system": client.get("/api/data/systems/999", headers=client.alice),
        "400 validation": client.get("/api/data/systems/x", headers=client.alice),
        "405": client.delete("/health"),
        "metrics": client.get("/metrics"),
        "500": client.get("/boom-for-test"),
    }
    status = {k: r.status_code for k, r in answers.items()}
    assert status == {"api json": 200, "health": 200, "page": 200, "login page": 200, "static": 200,
                      "redirect": 303, "401": 401, "404 route": 404, "404 system": 404, "400 validation": 400,
                      "405": 405, "metrics": 200, "500": 500}
    assert [k for k, r in answers.items() if not has_headers(r)] == []
    # the 500 is the API's error shape and says nothing of the exception
    assert answers["500"].json() == {"error": "internal server error", "code": "server_error", "details": None}
    assert "secret detail" not in answers["500"].text
    # a page still says how it may be cached; the headers appear once each
    assert answers["page"].headers["cache-control"] == "no-store"
    assert answers["page"].headers.get_list("x-frame-options") == ["DENY"]


def test_the_api_docs_get_their_own_policy(client):
    docs = client.get("/docs")
    assert docs.status_code == 200 and has_headers(docs, DOCS_CSP)
    assert has_headers(client.get("/openapi.json"))  # JSON: the strict policy


def test_middleware_replaces_what_a_route_set():
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    def loose(_request):
        return PlainTextResponse("x", headers={"X-Frame-Options": "SAMEORIGIN", "Referrer-Policy": "unsafe-url"})

    app = Starlette(routes=[Route("/", loose)])
    app.add_middleware(SecurityHeadersMiddleware)
    r = TestClient(app).get("/")
    assert {k.lower(): r.headers[k] for k in HEADERS} == WANT
    assert r.headers.get_list("referrer-policy") == ["strict-origin-when-cross-origin"]

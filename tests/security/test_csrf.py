"""CSRF protection (wattline.security.csrf): a state-changing request authenticated by
the session cookie needs the session's token; one refused changes nothing; bearer
tokens need none; GETs never; sign-in refuses another origin; sign-out needs the token."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from helpers import make_sqlite, session_headers
from world import make_ctx
from wattline.api.app import create_app
from wattline.security import csrf, tokens
from wattline.security.sessions import COOKIE_NAME, issue_session
from wattline.security.users import create_user, get_user_principal

PASSWORD = "a long test password"
URL = "/api/power-analytics/cost-versions"
VERSION = {"cost_per_kwh": 7.5, "effective_from": "2025-11-04T00:00:00+00:00", "currency": "INR"}


@pytest.fixture(scope="module")
def w(tmp_path_factory):

    tmp = tmp_path_factory.mktemp("csrf")
    dbs = make_sqlite(tmp)
    ctx = make_ctx(dbs, tmp)
    key = ctx.settings.encryption_key
    with dbs.main.begin() as conn:
        create_user(conn, "root", PASSWORD, "admin")
        root = get_user_principal(conn, "root")
        bearer = tokens.create_token(conn, "csrf test", "admin")
    with TestClient(create_app(ctx), raise_server_exceptions=False, follow_redirects=False) as client:
        client.key = key
        client.cookie = issue_session(key, root)
        client.other_cookie = issue_session(key, root, now=1_700_000_000)  # another session of root
        client.bearer = {"Authorization": f"Bearer {bearer}"}
        yield client
    dbs.dispose()


def _count(w) -> int:
    r = w.get(URL, headers=w.bearer)
    assert r.status_code == 200
    return len(r.json()["versions"])


def _cookie_only(cookie: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE_NAME}={cookie}"}


def _refused(r) -> bool:
    return r.status_code == 403 and r.json()["code"] == "csrf_failed" and "x-frame-options" in r.headers


def test_a_cookie_post_needs_the_session_token_and_a_refused_one_changes_nothing(w):
    before = _count(w)
    no_token = w.post(URL, json=VERSION, headers=_cookie_only(w.cookie))
    # a token of another session of the same user, and garbage, are as wrong as none
    other = w.post(URL, json=VERSION, headers={**_cookie_only(w.cookie),
                                               csrf.HEADER: csrf.token_for(w.key, w.other_cookie)})
    garbage = w.post(URL, json=VERSION, headers={**_cookie_only(w.cookie), csrf.HEADER: "é".encode() * 43})
    assert _refused(no_token) and _refused(other) and _refused(garbage), (no_token.text, other.text)
    assert _count(w) == before  # nothing was added
    ok = w.post(URL, json=VERSION, headers=session_headers(w.key, w.cookie))
    assert ok.status_code in (200, 201), ok.text
    assert _count(w) == before + 1


def test_every_unsafe_method_is_checked_and_no_safe_one(w):
    for method in ("PUT", "PATCH", "DELETE"):
        assert _refused(w.request(method, URL, headers=_cookie_only(w.cookie))), method
        # with the token it reaches the route, which has no such method
        assert w.request(method, URL, headers=session_headers(w.key, w.cookie)).status_code == 405
    assert w.get(URL, headers=_cookie_only(w.cookie)).status_code == 200
    for method in ("HEAD", "OPTIONS", "TRACE"):  # whatever the route says (405 here), not a refusal
        assert w.request(method, URL, headers=_cookie_only(w.cookie)).status_code != 403, method
    assert w.get("/cost-versions", headers=_cookie_only(w.cookie)).status_code == 200


def test_a_bearer_token_needs_no_csrf_token_even_beside_a_cookie(w):
    before = _count(w)
    body = {**VERSION, "effective_from": "2025-11-05T00:00:00+00:00"}
    assert w.post(URL, json=body, headers=w.bearer).status_code in (200, 201)
    # the bearer alone decides (security.deps ignores the cookie), so no token is asked
    body2 = {**VERSION, "effective_from": "2025-11-06T00:00:00+00:00"}
    assert w.post(URL, json=body2, headers={**w.bearer, **_cookie_only(w.cookie)}).status_code in (200, 201)
    assert _count(w) == before + 2
    # no credential at all: no token asked either, and the route says 401
    assert w.post(URL, json=VERSION).status_code == 401


def test_a_page_carries_its_sessions_token_and_the_sign_out_form_too(w):
    page = w.get("/", headers=_cookie_only(w.cookie))
    want = csrf.token_for(w.key, w.cookie)
    assert f'<meta name="csrf-token" content="{want}">' in page.text
    assert re.search(rf'name="csrf_token" value="{re.escape(want)}"', page.text)
    assert want != csrf.token_for(w.key, w.other_cookie)
    assert "csrf-token" not in w.get("/login").text  # no session, no token


def test_sign_in_from_another_origin_is_refused(w):
    form = {"username": "root", "password": PASSWORD, "next": "/"}
    for foreign in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Referer": "https://evil.example/page"}):
        r = w.post("/login", data=form, headers=foreign)
        assert _refused(r) and COOKIE_NAME not in r.headers.get("set-cookie", ""), foreign
    for own in ({"Origin": "http://testserver"}, {"Referer": "http://testserver/login"}, {},
                {"Origin": "https://energy.example", "X-Forwarded-Host": "energy.example"}):  # behind a proxy
        r = w.post("/login", data=form, headers=own)
        assert r.status_code == 303 and COOKIE_NAME in r.headers["set-cookie"], own
        w.cookies.clear()


def test_sign_out_needs_the_token_and_a_get_only_asks(w):
    refused = w.post("/logout", headers=_cookie_only(w.cookie))
    assert _refused(refused) and "set-cookie" not in refused.headers
    asked = w.get("/logout", headers=_cookie_only(w.cookie))
    assert asked.status_code == 200 and "set-cookie" not in asked.headers and 'data-testid="logout-form"' in asked.text
    out = w.post("/logout", data={csrf.FORM_FIELD: csrf.token_for(w.key, w.cookie)},
                 headers=_cookie_only(w.cookie))
    assert out.status_code == 303 and f'{COOKIE_NAME}=""' in out.headers["set-cookie"]
    assert w.post("/logout").status_code == 303  # nobody signed in: nothing to protect


def test_the_fronius_push_which_ignores_the_cookie_is_not_asked_for_a_token(w):
    # its apiKey in the body is its only credential: a cookie sent along changes nothing
    r = w.post("/api/push/fronius", json={"siteId": "nowhere", "apiKey": "not-a-key"}, headers=_cookie_only(w.cookie))
    assert not _refused(r) and r.status_code in (400, 401), r.text

"""The setup wizard's Enphase step over HTTP: POST /api/setup/enphase (nothing written),
the OAuth start and callback against the emulated authorization server, and the system
created only at the end, its tokens stored encrypted; refusals change nothing."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from world import make_ctx
from wattline import clock as wall_clock
from wattline.api.app import create_app
from wattline.security.crypto import decrypt_credentials
from helpers import sign_in_client
from wattline.security.sessions import issue_session
from wattline.security.users import create_user, get_user_principal
from wattline.simulator.vendor_cloud import BackgroundCloud, CloudConfig
from wattline.simulator.vendor_cloud import enphase as emu
from wattline.store import systems_repo, vendor_accounts_repo

APP = {"client_id": emu.DEMO_CLIENT_ID, "client_secret": emu.DEMO_CLIENT_SECRET, "api_key": emu.DEMO_API_KEY}
SETUP = {"vendorType": "enphase", "siteId": emu.DEMO_SYSTEM, "displayName": "Roof", "alias": "roof",
         "timezone": "Australia/Sydney", "credentials": APP}


@pytest.fixture
def setup(sqlite_dbs, tmp_path):
    ctx = make_ctx(sqlite_dbs, tmp_path)
    with BackgroundCloud(CloudConfig(clock=wall_clock.now, history_source="clear_sky", warm_plants=False)) as cloud:
        ctx.settings.vendor_base_url = cloud.base_url
        with ctx.dbs.main.begin() as conn:
            for name in ("alice", "mallory"):
                create_user(conn, name, "a long test password", "user")
            sessions = {n: issue_session(ctx.settings.encryption_key, get_user_principal(conn, n))
                        for n in ("alice", "mallory")}
        with TestClient(create_app(ctx)) as client:
            sign_in_client(client, ctx.settings.encryption_key, sessions["alice"])
            yield client, ctx, cloud, sessions


def _systems(ctx) -> list[dict]:
    with ctx.dbs.main.connect() as conn:
        return systems_repo.list_systems(conn)


def _to_enphase_and_back(client) -> str:
    """Start, approve at the emulated Enphase; the callback URL (path and query) it sends back."""
    start = client.get("/api/auth/enphase/auth", follow_redirects=False)
    assert start.status_code == 302, start.text
    approved = httpx.get(start.headers["location"], follow_redirects=False)  # the owner approves
    assert approved.status_code == 302
    back = urlsplit(approved.headers["location"])
    assert back.path == "/api/auth/enphase/callback" and parse_qs(back.query)["code"]
    return f"{back.path}?{back.query}"


def test_the_wizard_authorizes_at_enphase_and_only_then_adds_the_system(setup):
    client, ctx, cloud, _ = setup
    r = client.post("/api/setup/enphase", json=SETUP)
    assert r.status_code == 200, r.text
    assert r.json() == {"authorizeUrl": "/api/auth/enphase/auth"}
    assert emu.DEMO_CLIENT_SECRET not in r.text and emu.DEMO_CLIENT_SECRET not in r.headers["set-cookie"]
    assert _systems(ctx) == []  # nothing written before the owner authorized

    done = client.get(_to_enphase_and_back(client), follow_redirects=False)
    assert done.status_code == 303, done.text
    saved = parse_qs(urlsplit(done.headers["location"]).query)
    assert urlsplit(done.headers["location"]).path == "/setup" and "saved" in saved
    [s] = _systems(ctx)
    assert (s["id"], s["display_name"], s["alias"], s["owner"], s["vendor_type"], s["vendor_site_id"],
            s["timezone"]) == (int(saved["saved"][0]), "Roof", "roof", "alice", "enphase", emu.DEMO_SYSTEM,
                               "Australia/Sydney")
    with ctx.dbs.main.connect() as conn:
        account = vendor_accounts_repo.get(conn, s["vendor_account_id"])
    creds = decrypt_credentials(ctx.settings.encryption_key, account["credentials_encrypted"])
    assert creds["access_token"] and creds["refresh_token"] and creds["client_id"] == emu.DEMO_CLIENT_ID
    assert creds["access_token"].encode() not in account["credentials_encrypted"]  # encrypted at rest
    for secret in (creds["access_token"], creds["refresh_token"], emu.DEMO_CLIENT_SECRET):
        assert secret not in done.text and secret not in done.headers.get("location", "")
    assert cloud.state.stats.count("enphase", "token", status=200) == 1
    # the pending setup is spent (its cookie deleted): no second start for a plain user
    assert client.get("/api/auth/enphase/auth", follow_redirects=False).status_code == 403
    page = client.get(done.headers["location"])
    assert page.status_code == 200 and 'data-testid="authorize"' in page.text


def test_refusals_write_nothing(setup):
    client, ctx, _cloud, sessions = setup
    bad = client.post("/api/setup/enphase", json={**SETUP, "credentials": {"client_id": "x"}})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_credentials"
    other = client.post("/api/setup/enphase", json={**SETUP, "vendorType": "selectronic",
                                                    "credentials": {"email": "a@b.c", "password": "pw"}})
    assert other.status_code == 400
    assert client.post("/api/setup/enphase", json={**SETUP, "timezone": "Mars/Base"}).status_code == 400
    # a user without a pending setup cannot start or finish one
    assert client.get("/api/auth/enphase/auth", follow_redirects=False).status_code == 403
    assert client.get("/api/auth/enphase/callback", params={"code": "c", "state": "0.x.1.y"}).status_code == 403

    # the owner says no at Enphase: back to the wizard, nothing written
    assert client.post("/api/setup/enphase", json=SETUP).status_code == 200
    start = client.get("/api/auth/enphase/auth", follow_redirects=False)
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    # another user's browser holding alice's cookies is refused (the pending setup names alice)
    stolen = {k: v for k, v in client.cookies.items()}
    with TestClient(client.app) as thief:
        for k, v in stolen.items():
            thief.cookies.set(k, v)
        sign_in_client(thief, client.app.state.ctx.settings.encryption_key, sessions["mallory"])
        assert thief.get("/api/auth/enphase/callback", params={"code": "c", "state": state},
                         follow_redirects=False).status_code == 403
    denied = client.get("/api/auth/enphase/callback", params={"error": "access_denied", "state": state},
                        follow_redirects=False)
    assert denied.status_code == 303 and denied.headers["location"] == "/setup?enphaseError=authorization_denied"
    assert _systems(ctx) == []
    # a tampered state is refused before anything else
    assert client.post("/api/setup/enphase", json=SETUP).status_code == 200
    client.get("/api/auth/enphase/auth", follow_redirects=False)
    assert client.get("/api/auth/enphase/callback", params={"code": "c", "state": "0.x.1.y"}).status_code == 400
    # a refused code: back to the wizard, nothing written
    start = client.get("/api/auth/enphase/auth", follow_redirects=False)
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    r = client.get("/api/auth/enphase/callback", params={"code": "not-a-code", "state": state},
                   follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/setup?enphaseError=grant_refused"
    assert _systems(ctx) == []
    # an alias already taken is refused at the start, before the owner goes to Enphase
    assert client.post("/api/setup/enphase", json=SETUP).status_code == 200
    client.get(_to_enphase_and_back(client), follow_redirects=False)
    assert len(_systems(ctx)) == 1
    again = client.post("/api/setup/enphase", json=SETUP)
    assert again.status_code == 409, again.text
    assert len(_systems(ctx)) == 1

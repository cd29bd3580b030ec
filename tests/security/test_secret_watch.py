"""The secret watch (tests/secret_watch.py) catches a planted secret in every channel.

The scanner is tested directly; one inner pytest run (a subprocess, so its patches are its
own) proves the channels are wired and that a leak fails the run without showing the secret.
"""

from __future__ import annotations

import base64
import html
import os
import urllib.parse
from pathlib import Path

import pytest

import secret_watch
from secret_watch import API_TOKEN, ENCRYPTION_KEY, SESSION, USER_PASSWORD, VENDOR_CRED, VENDOR_KINDS, Watch

pytest_plugins = ["pytester"]

# built at run time and named plainly, so the outer watch does not take it for a secret
PLANTED = "-".join(["planted", "Zq8xV3", "lm"])


def _kinds(w: Watch) -> set[str]:
    return {f.kind for f in w.findings.values()}


def test_a_password_is_found_plain_escaped_and_encoded_but_ordinary_text_is_not():
    w = Watch()
    w.add("tiger & <lion> 42", USER_PASSWORD, "test")
    w.scan('{"ok": true, "items": [1, 2, 3]} <p>tiger and lion</p>', "clean")
    assert not w.findings
    for i, text in enumerate(("x tiger & <lion> 42 y", html.escape("tiger & <lion> 42"),
                              urllib.parse.quote("tiger & <lion> 42"), b"tiger & <lion> 42")):
        w.scan(text, f"channel {i}")
    assert {f.channel for f in w.findings.values()} == {f"channel {i}" for i in range(4)}
    assert _kinds(w) == {USER_PASSWORD}


def test_an_encryption_key_is_found_in_base64_urlsafe_and_hex():
    w = Watch()
    key = os.urandom(32)
    w.add_key(key, "test")
    w.scan(f"nothing here {base64.b64encode(os.urandom(32)).decode()}", "other key")
    assert not w.findings
    forms = (base64.b64encode(key).decode(), base64.urlsafe_b64encode(key).decode().rstrip("="), key.hex())
    for i, form in enumerate(forms):
        w.scan(f'{{"key": "{form}"}}', f"form {i}")
    assert len(w.findings) == 3 and _kinds(w) == {ENCRYPTION_KEY}


def test_session_cookies_and_api_tokens_are_found_by_their_shape():
    from wattline.security.principal import Principal
    from wattline.security.sessions import issue_session

    w = Watch()
    cookie = issue_session(os.urandom(32), Principal("user", "alice", "user"))
    w.scan(f"<input value='{cookie}'>", "page")
    w.scan("Authorization: Bearer wl_" + "x" * 43, "log")
    assert _kinds(w) == {SESSION, API_TOKEN}


def test_the_token_create_output_may_show_its_one_token_once():
    w = Watch()
    token = "wl_" + "T" * 20 + "u" * 23
    assert w.scan(token + "\n", "stdout of tokens create", allow_tokens=1) == [token]
    assert not w.findings
    w.scan(f"later: {token}", "a log line")  # shown once; anywhere else it is a leak
    assert [f.channel for f in w.findings.values()] == ["a log line"]


def test_vendor_emulators_may_show_their_own_credentials_never_a_wattline_secret():
    w = Watch()
    w.add("vendor-pass-123", VENDOR_CRED, "test")
    w.add("user-pass-4567", USER_PASSWORD, "test")
    w.scan("vendor-pass-123 user-pass-4567", "vendor emulator", allow=VENDOR_KINDS)
    assert _kinds(w) == {USER_PASSWORD}


def test_short_or_plain_secrets_are_not_watched_and_are_counted():
    w = Watch()
    for s in ("pw", "1234567890", "aaaaaaaaaa", "password"):
        w.add(s, USER_PASSWORD, "test")
    assert not w.literals and len(w.ignored) == 4


INNER = '''
import logging, subprocess, sys
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from wattline.security import passwords

PLANTED = {planted!r}

def test_0_a_user_gets_the_password():
    passwords.hash_password(PLANTED)

def test_log():
    logging.getLogger("wattline.inner").debug("signing in with %s", PLANTED)

def test_response():
    app = Starlette(routes=[Route("/echo", lambda request: PlainTextResponse("pw=" + PLANTED))])
    assert TestClient(app).get("/echo").status_code == 200

def test_stdout():
    print(PLANTED)

def test_subprocess():
    subprocess.run([sys.executable, "-c", "print(%r)" % PLANTED], capture_output=True, check=True)
'''


@pytest.mark.parametrize("workers", [[], ["-n", "2", "--dist", "loadfile"]], ids=["serial", "xdist"])
def test_a_planted_secret_in_each_channel_fails_the_inner_run(pytester, monkeypatch, workers):
    """Serial, and as scripts/test runs the suite (xdist: each worker watches its tests and
    hands its findings to the controller, which fails the run)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(secret_watch.__file__).parent),
                                                      os.environ.get("PYTHONPATH", "")]))
    pytester.makeconftest('pytest_plugins = ["secret_watch"]\n')
    pytester.makepyfile(test_inner=INNER.format(planted=PLANTED))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", "-q", *workers)
    out = result.stdout.str()
    result.assert_outcomes(passed=5)
    assert result.ret == 1, out
    assert "SECRETS LEAKED" in out and PLANTED not in out + result.stderr.str()
    for channel in ("log wattline.inner DEBUG during test_inner.py::test_log",
                    "response GET /echo during test_inner.py::test_response",
                    "captured stdout call during test_inner.py::test_stdout",
                    "subprocess stdout"):
        assert channel in out, out


def test_secrets_are_learnt_where_they_are_made():
    import pytest

    if secret_watch.WATCH is None:
        pytest.skip("the secret watch is off (-p no:secret_watch)")
    from wattline.config import Settings
    from wattline.security.crypto import encrypt_credentials
    from wattline.sources.mqtt.broker_url import BrokerAddress

    w = secret_watch.WATCH
    key = os.urandom(32)
    Settings(secret_key=base64.b64encode(key).decode(), cron_secret="cron-" + "Qm7wz" * 2,
             redis_url="redis://:" + "rds-" + "Pw4k" * 3 + "@127.0.0.1:6379/0")
    BrokerAddress("broker", 1883, "ingest", "mqtt-" + "Hx9t" * 3)
    encrypt_credentials(os.urandom(32), {"email": "a@example.org", "api_key": "push-" + "Kf3j" * 3})
    assert {"cron-" + "Qm7wz" * 2, "rds-" + "Pw4k" * 3, "mqtt-" + "Hx9t" * 3, "push-" + "Kf3j" * 3} <= w.literals.keys()
    assert "a@example.org" not in w.literals
    assert base64.b64encode(key).decode().rstrip("=") in w.opaque


def test_only_the_token_create_command_may_show_a_token():
    from wattline.cli_security import tokens_app

    assert secret_watch._creates_a_token(tokens_app, ["create", "--role", "admin"])
    assert secret_watch._creates_a_token(object(), ["tokens", "create", "--role", "admin"])
    assert not secret_watch._creates_a_token(tokens_app, ["list"])
    assert not secret_watch._creates_a_token(object(), ["users", "create", "alice"])

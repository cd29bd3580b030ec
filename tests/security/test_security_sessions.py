"""Signed, expiring session cookies."""

from __future__ import annotations

import base64
import json
import os

from wattline.security.principal import Principal
from wattline.security.sessions import issue_session, read_session, session_key

KEY = os.urandom(32)
ALICE = Principal("user", "alice", "admin", 7)
T0 = 1_700_000_000


def test_round_trip_and_expiry():
    cookie = issue_session(KEY, ALICE, ttl_s=3600, now=T0)
    assert read_session(KEY, cookie, now=T0 + 10) == ALICE
    assert read_session(KEY, cookie, now=T0 + 3599) == ALICE
    assert read_session(KEY, cookie, now=T0 + 3600) is None  # expired
    assert read_session(KEY, cookie, now=T0 - 3600) is None  # issued in the future
    assert read_session(KEY, issue_session(KEY, ALICE)) == ALICE  # default 8 h, real clock


def test_tampering_and_wrong_key_are_rejected():
    cookie = issue_session(KEY, ALICE, now=T0)
    body, sig = cookie.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["r"] = "superadmin"
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    assert read_session(KEY, f"{forged}.{sig}", now=T0) is None
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    assert read_session(KEY, f"{body}.{flipped}", now=T0) is None
    assert read_session(os.urandom(32), cookie, now=T0) is None
    for junk in (None, "", "abc", "a.b.c", "é.é", "." * 5000):
        assert read_session(KEY, junk, now=T0) is None


def test_signing_key_is_derived_not_the_aes_key():
    assert session_key(KEY) != KEY and len(session_key(KEY)) == 32
    assert session_key(KEY) == session_key(KEY)

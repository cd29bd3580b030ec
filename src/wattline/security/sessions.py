"""Signed, expiring dashboard session cookies, with no server-side table.

Cookie: base64url(JSON payload) "." base64url(HMAC-SHA256(payload)). The HMAC key
is derived from the credential key with HKDF under its own label, so the AES key
itself never signs anything and the two uses cannot be confused.
The payload is signed, not encrypted: it holds nothing secret (username, role, and a
truncated hash of the password hash, which changes when the password does).
"""

from __future__ import annotations

from wattline import clock

import base64
import hashlib
import hmac
import json

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from wattline.security.principal import Principal

COOKIE_NAME = "wattline_session"
DEFAULT_TTL_S = 8 * 3600
_INFO = b"wattline-session-hmac-v1"
_CLOCK_SKEW_S = 60
_MAX_COOKIE_LENGTH = 4096


def session_key(master_key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(master_key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, body: str) -> str:
    return _b64(hmac.new(session_key(key), body.encode(), hashlib.sha256).digest())


def issue_session(key: bytes, principal: Principal, ttl_s: int = DEFAULT_TTL_S, *, now: float | None = None) -> str:
    """A cookie value for a logged-in user, valid for ``ttl_s`` seconds."""
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    iat = int(clock.now() if now is None else now)
    payload = {"u": principal.name, "r": principal.role, "o": principal.organization_id,
               "c": principal.credential, "iat": iat, "exp": iat + int(ttl_s)}
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_sign(key, body)}"


def read_session(key: bytes, cookie: str | None, *, now: float | None = None) -> Principal | None:
    """The principal in a valid cookie; None if missing, malformed, tampered or expired."""
    if not cookie or len(cookie) > _MAX_COOKIE_LENGTH or cookie.count(".") != 1:
        return None
    body, sig = cookie.split(".")
    if not hmac.compare_digest(_sign(key, body).encode(), sig.encode()):
        return None
    try:
        p = json.loads(_unb64(body))
        name, role, org, iat, exp = p["u"], p["r"], p["o"], int(p["iat"]), int(p["exp"])
    except (ValueError, TypeError, KeyError):
        return None  # signed by us but unreadable: a format change; treat as logged out
    t = clock.now() if now is None else now
    if not (iat - _CLOCK_SKEW_S <= t < exp):
        return None
    return Principal(kind="user", name=name, role=role, organization_id=org, credential=p.get("c"))

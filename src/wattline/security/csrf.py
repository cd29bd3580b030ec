"""CSRF protection for requests the dashboard's session cookie authenticates.

A browser attaches the session cookie to a request another site makes it send (a
form POST, a fetch with credentials); ``SameSite=Lax`` keeps most of those away in
current browsers, but not a same-site one (another app on a sibling subdomain) and
not an old browser. So every state-changing request that carries the cookie must
also carry a token only our own pages know:

* **The token** is ``HMAC-SHA256(K, cookie value)``, with ``K`` derived from the
  credential key by HKDF under its own label (as the session key is). Sessions have
  no server-side table, so a token derived from the cookie needs no storage, changes
  with every sign-in, dies with the cookie, and cannot be made by a site that cannot
  read the cookie (it is HttpOnly). It reaches the page as ``<meta name="csrf-token">``
  (base.html) and comes back in the ``X-CSRF-Token`` header (static/common.js
  ``api()``) or the ``csrf_token`` field of a plain HTML form (sign-out).
* **The check** (:class:`CsrfMiddleware`, pure ASGI, before any route runs, so a
  refused request changes nothing): a method that is not safe (anything but GET,
  HEAD, OPTIONS, TRACE) with a non-empty session cookie and no ``Authorization``
  header must present the token, compared in constant time; else 403
  ``csrf_failed``. A request with an ``Authorization`` header is exempt because
  security.deps then judges it on that header alone and ignores the cookie (bearer
  API tokens, the cron secret); so is one with no cookie (the Fronius push's apiKey,
  scripts). The middleware checks any cookie, valid or not: that way it needs no
  database and cannot be skipped by a route that forgets to authenticate.
* **Sign-in and sign-out** check themselves (:data:`SELF_CHECKED`): sign-in has no
  session yet, so it refuses a browser request from another origin by its
  ``Origin`` header (``Referer`` when there is none; a request with neither is a
  script, not a browser, and is let through) — that stops login CSRF, signing a
  victim into the attacker's account. Sign-out takes the token from its form field
  (or the header).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from wattline.security.errors import error_response
from wattline.security.sessions import COOKIE_NAME

HEADER = "X-CSRF-Token"
FORM_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# routes that do their own check (see the module docstring)
SELF_CHECKED = frozenset({"/login", "/logout"})
# routes that never honour the session cookie (the Fronius push: its apiKey in the body
# is its only credential), so a cookie sent along cannot make them act for a user
COOKIE_IGNORED_PREFIXES = ("/api/push/",)
_INFO = b"wattline-csrf-token-v1"
_MAX_TOKEN = 128


def _key(master_key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(master_key)


def token_for(master_key: bytes, session_cookie: str) -> str:
    """The CSRF token of the session whose cookie value is ``session_cookie``."""
    digest = hmac.new(_key(master_key), session_cookie.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_matches(master_key: bytes, session_cookie: str, presented: str | None) -> bool:
    if not presented or len(presented) > _MAX_TOKEN:
        return False
    # bytes: compare_digest refuses non-ASCII str, and a client may send anything
    return hmac.compare_digest(token_for(master_key, session_cookie).encode(), presented.encode())


def session_cookie(headers: Headers) -> str | None:
    """The session cookie's value in a request's headers, or None (absent or empty)."""
    raw = headers.get("cookie")
    return (cookie_parser(raw).get(COOKIE_NAME) or None) if raw else None


def needs_token(method: str, headers: Headers) -> str | None:
    """The session cookie a request must prove it may use, or None if it needs no token."""
    if method.upper() in SAFE_METHODS or "authorization" in headers:
        return None
    return session_cookie(headers)


def _host_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return parts.netloc.lower() if parts.scheme in ("http", "https") and parts.netloc else None


def same_origin(headers: Headers) -> bool:
    """False when a browser says the request comes from a page of another host.

    The host is compared, not the scheme: behind a TLS-terminating proxy the app sees
    http while the browser's Origin says https. A proxy that rewrites ``Host`` names the
    public one in ``X-Forwarded-Host``, which is accepted too: a page of another site
    cannot set that header on a form post (nor, without our CORS consent, on a fetch)."""
    ours = {(headers.get("host") or "").lower()}
    forwarded = headers.get("x-forwarded-host")
    if forwarded:
        ours.add(forwarded.split(",")[0].strip().lower())
    origin = headers.get("origin")
    if origin is not None:
        return _host_of(origin) in ours  # "null" (a sandboxed or privacy-redirected page) is foreign
    referer = headers.get("referer")
    if referer is not None:
        return _host_of(referer) in ours
    return True


def refusal(message: str = f"missing or wrong CSRF token ({HEADER}): reload the page and try again"):
    return error_response(403, "csrf_failed", message, None, {"Cache-Control": "no-store"})


class CsrfMiddleware:
    """Refuses an unsafe cookie-authenticated request without the session's token."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path") or ""
        if scope["type"] == "http" and path not in SELF_CHECKED and not path.startswith(COOKIE_IGNORED_PREFIXES):
            headers = Headers(scope=scope)
            cookie = needs_token(scope["method"], headers)
            if cookie is not None:
                key = scope["app"].state.ctx.settings.encryption_key
                if not token_matches(key, cookie, headers.get(HEADER)):
                    await refusal()(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def install(app) -> None:
    """Install on the app before security.headers (Starlette: the later one wraps), so
    a refusal carries the security headers too."""
    app.add_middleware(CsrfMiddleware)

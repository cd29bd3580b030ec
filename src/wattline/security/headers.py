"""Security headers on every response: pages, API JSON, static files, 404s and errors.

One pure-ASGI middleware (no per-request task or body buffering) sets

* ``Content-Security-Policy``: :data:`CSP` (scripts from this origin only; Plotly
  injects styles, hence ``'unsafe-inline'`` for styles), except on the API docs
  (``/docs``, ``/redoc``), which FastAPI renders with an inline script and Swagger UI /
  ReDoc from their CDN: those get :data:`DOCS_CSP`;
* ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: strict-origin-when-cross-origin``.

They replace any value a route set, so this module is the one place they are decided.
An exception that escapes the app is answered here with the API's 500 shape
(``{"error", "code", "details"}``) carrying the headers, then re-raised for the
server's log; the message of the exception is never sent.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
            "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
            "font-src 'self' data: https://fonts.gstatic.com; worker-src 'self' blob:; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")

HEADERS: dict[str, str] = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Content-Security-Policy": CSP,
}
_NAMES = {k.lower().encode() for k in HEADERS}
_RAW = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]
_RAW_DOCS = [(k, DOCS_CSP.encode() if k == b"content-security-policy" else v) for k, v in _RAW]
_ERROR_BODY = json.dumps({"error": "internal server error", "code": "server_error", "details": None}).encode()


def headers_for(path: str) -> dict[str, str]:
    """The security headers a response to ``path`` carries."""
    return {**HEADERS, "Content-Security-Policy": DOCS_CSP if path in DOCS_PATHS else CSP}


class SecurityHeadersMiddleware:
    """Adds :data:`HEADERS` to every HTTP response (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = _RAW_DOCS if scope.get("path") in DOCS_PATHS else _RAW
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                kept = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in _NAMES]
                message = {**message, "headers": kept + extra}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if not started:
                await send({"type": "http.response.start", "status": 500,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(_ERROR_BODY)).encode()),
                                        (b"cache-control", b"no-store")] + extra})
                await send({"type": "http.response.body", "body": _ERROR_BODY})
            raise


def install(app) -> None:
    """Install the middleware on a FastAPI/Starlette app. Middlewares added later wrap
    it (Starlette's order), so none of them may drop these headers."""
    app.add_middleware(SecurityHeadersMiddleware)

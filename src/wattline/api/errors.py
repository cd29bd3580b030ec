"""The API's answer to a request FastAPI could not validate: 400 ``invalid_parameter``
in the ``{"error", "code", "details"}`` shape, naming the parameter and the rule.

FastAPI answers such a request with 422 and its own body; Wattline's API documents
and returns 400 with the shared error shape instead (as it did when parameters were
checked by hand), so :func:`openapi_without_default_422` removes the 422 entries
FastAPI adds to the schema (and declares how the API authenticates).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from wattline.api.openapi_links import add_links
from wattline.security import sessions
from wattline.security.errors import error_response

_LOCATIONS = {"query", "path", "header", "cookie"}
# rule arguments safe to repeat (never the offending input: it could be a token)
_CONTEXT_KEYS = ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern", "expected")


def _describe(e: dict) -> dict:
    loc = [str(p) for p in e.get("loc", ())]
    out: dict[str, Any] = {"loc": loc, "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
    ctx = {k: v for k, v in (e.get("ctx") or {}).items() if k in _CONTEXT_KEYS and isinstance(v, (int, float, str))}
    if ctx:
        out["ctx"] = ctx
    return out


def install_validation_handler(app: FastAPI) -> None:
    """Register after ``security.errors.install_error_handlers``: this one wins."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_describe(e) for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        loc = first["loc"]
        if loc and loc[0] in _LOCATIONS:
            name = loc[-1] if len(loc) > 1 else loc[0]
            message = f"{loc[0]} parameter {name!r}: {first['msg']}"
            return error_response(400, "invalid_parameter", message,
                                  {"parameter": name, "in": loc[0], "errors": errors})
        return error_response(400, "invalid_request", f"invalid request: {first['msg']}", {"errors": errors})


def _declare_authentication(schema: dict) -> None:
    """What security.deps accepts, for /docs' "Authorize" and for clients: a bearer
    credential (API token, or the cron secret for sync-all) or the dashboard's session
    cookie, on every /api operation."""
    schema.setdefault("components", {})["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "an API token (wattline tokens create)"},
        "session": {"type": "apiKey", "in": "cookie", "name": sessions.COOKIE_NAME,
                    "description": "the dashboard's session, after signing in at /login; a call that "
                                   "changes anything also sends the page's csrf-token in X-CSRF-Token"},
    }
    for path, ops in schema.get("paths", {}).items():
        if path.startswith("/api/"):
            for op in ops.values():
                op["security"] = [{"bearer": []}, {"session": []}]


def _is_default_422(answer: dict | None) -> bool:
    """FastAPI's automatic 422: its body is an HTTPValidationError."""
    return answer is not None and "HTTPValidationError" in str(answer.get("content", {}))


def openapi_without_default_422(app: FastAPI) -> None:
    """Build the OpenAPI document once, without FastAPI's automatic 422 answers (and
    their schemas): validation errors come out as the documented 400."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes, tags=app.openapi_tags)
            for path in schema.get("paths", {}).values():
                for op in path.values():
                    if isinstance(op, dict) and _is_default_422(op.get("responses", {}).get("422")):
                        # a route's own 422 (a refused composite, a failed connection test) stays
                        op["responses"].pop("422")
            schemas = schema.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            _declare_authentication(schema)
            add_links(schema)  # which answer names what another operation takes
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

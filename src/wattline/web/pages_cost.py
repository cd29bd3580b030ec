"""The cost-version manager: every version, and (admins) a form to add one.

The page is a shell like the others; ``static/cost_versions.js`` reads and posts
``/api/power-analytics/cost-versions`` with the session cookie and, when the answer
names a job (the re-pricing check of what the version covers), follows its progress.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from wattline.security.roles import role_at_least
from wattline.web.pages import _render, _to_login, _user


def mount(app: FastAPI) -> None:
    @app.get("/cost-versions", response_class=HTMLResponse, include_in_schema=False)
    def cost_versions_page(request: Request) -> Response:
        principal = _user(request)
        if principal is None:
            return _to_login(request)
        return _render(request, "cost_versions.html", principal=principal, page="cost-versions",
                       title="Cost versions", may_add=role_at_least(principal.role, "admin"))

"""The review page (``/review``): reconciliation's review items with filters and a
resolve button, and for admins a recalculate form showing the job's progress.

The page is a shell; ``static/review.js`` fills it from
``/api/power-analytics/review-items`` and posts to ``.../resolve`` and
``/api/power-analytics/recalculate`` with the session cookie, polling the job URL.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from wattline.security.roles import role_at_least
from wattline.web.pages import _render, _to_login, _user

KINDS = ("missing_heartbeat", "gap", "out_of_order", "energy_while_off", "aggregate_mismatch", "unknown_device")


def mount(app: FastAPI) -> None:
    """Add ``/review`` to ``app``."""

    @app.get("/review", response_class=HTMLResponse, include_in_schema=False)
    def review_page(request: Request) -> Response:
        principal = _user(request)
        if principal is None:
            return _to_login(request)
        return _render(request, "review.html", principal=principal, page="review", title="Review items",
                       kinds=KINDS, is_admin=role_at_least(principal.role, "admin"))

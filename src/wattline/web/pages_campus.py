"""Dashboard pages of the campus: the classrooms list and a classroom's page.

Both are shells like the plant pages: ``static/campus.js`` fetches the campus
analytics API (``/api/power-analytics/summary``, ``timeline``, ``device-breakdown``)
with the session cookie, fills the cards and the device table and draws the timeline
with Plotly.js (served from the installed package by ``web/pages.py``).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from wattline import clock
from wattline.domain import campus as C
from wattline.domain import timeutil
from wattline.store import campus_queries as Q
from wattline.web.pages import _not_found, _render, _to_login, _user

BUCKETS = (5, 15, 60, 1440)
DEFAULT_BUCKET = 60


def mount(app: FastAPI) -> None:
    """Add ``/classrooms`` and ``/classrooms/{name}`` to ``app``."""

    @app.get("/classrooms", response_class=HTMLResponse, include_in_schema=False)
    def classrooms_page(request: Request) -> Response:
        principal = _user(request)
        if principal is None:
            return _to_login(request)
        return _render(request, "classrooms.html", principal=principal, page="classrooms", title="Classrooms")

    @app.get("/classrooms/{name}", response_class=HTMLResponse, include_in_schema=False)
    def classroom_page(request: Request, name: str, date: str | None = None) -> Response:
        principal = _user(request)
        if principal is None:
            return _to_login(request)
        dbs = request.app.state.ctx.dbs
        org = Q.organization(dbs.main_reader, principal.organization_id)
        room = Q.classroom(dbs.main_reader, org, name) if org is not None and len(name) <= 200 else None
        if room is None:
            return _not_found(request, principal, f"No classroom {name}.")
        today = timeutil.local_date(clock.now_s(), room.timezone).isoformat()
        day = date if date and len(date) == 10 and _is_date(date) else today
        return _render(request, "classroom.html", principal=principal, page="classroom", title=room.name,
                       classroom={"name": room.name, "timezone": room.timezone}, day=day, buckets=BUCKETS,
                       default_bucket=DEFAULT_BUCKET, estimated_below=C.ESTIMATED_BELOW_PCT)


def _is_date(text: str) -> bool:
    from datetime import date

    try:
        C.check_date("date", date.fromisoformat(text))
    except ValueError:
        return False
    return True

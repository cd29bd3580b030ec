"""Admin pages of monitored systems (seed 003's /admin): systems, a system's points,
poll sessions, users, connection tests and database statistics.

Each page is a shell filled by ``static/admin.js`` from the admin API
(``/api/admin/systems``, ``/api/admin/systems/{id}/points``, ``/api/admin/sessions``,
``/api/admin/users``, ``POST /api/test-connection``, ``/api/admin/database``). A
signed-in caller below admin gets a 404 page (the admin pages are not revealed, as the
access matrix's ``page`` policy has it); the API refuses them anyway.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from wattline.domain import system_health
from wattline.security.roles import role_at_least
from wattline.store import systems_repo
from wattline.web.pages import _int_or_none, _not_found, _render, _to_login, _user
from wattline.web.pages_systems import SETUP_VENDORS, credential_fields

USER_ROLES = ("viewer", "user", "admin")  # what POST /api/admin/users creates
ADMIN_PAGES = (("admin-systems", "/admin/systems", "Systems"), ("admin-sessions", "/admin/sessions", "Sessions"),
               ("admin-users", "/admin/users", "Users"),
               ("admin-connection-test", "/admin/connection-test", "Connection test"),
               ("admin-database", "/admin/database", "Database"))


def _admin(request: Request):
    """(principal, response): the admin caller, or the response to send instead."""
    principal = _user(request)
    if principal is None:
        return None, _to_login(request)
    if principal.kind == "cron" or not role_at_least(principal.role, "admin"):
        return None, _not_found(request, principal, "No such page.")
    return principal, None


def _page(request: Request, template: str, page: str, title: str, **extra) -> Response:
    principal, refused = _admin(request)
    if refused is not None:
        return refused
    return _render(request, template, principal=principal, page=page, title=title, admin_pages=ADMIN_PAGES,
                   **extra)


def mount(app: FastAPI) -> None:
    """Add the admin pages to ``app``."""

    # the page colours the dots by the API's freshnessS (server clock) with the domain's thresholds
    dots = {"green_below_s": system_health.GREEN_BELOW_S, "yellow_upto_s": system_health.YELLOW_UPTO_S}

    @app.get("/admin", include_in_schema=False)
    def admin_home(request: Request) -> Response:
        return _page(request, "admin_systems.html", "admin-systems", "Admin · systems", **dots)

    @app.get("/admin/systems", response_class=HTMLResponse, include_in_schema=False)
    def admin_systems(request: Request) -> Response:
        return _page(request, "admin_systems.html", "admin-systems", "Admin · systems", **dots)

    @app.get("/admin/systems/{system_id}/points", response_class=HTMLResponse, include_in_schema=False)
    def admin_points(request: Request, system_id: str) -> Response:
        principal, refused = _admin(request)
        if refused is not None:
            return refused
        sid = _int_or_none(system_id)
        s = None
        if sid is not None and sid > 0:
            with request.app.state.ctx.dbs.main_reader.connect() as conn:
                s = systems_repo.system(conn, sid)
        if s is None or principal.organization_id not in (None, s["organization_id"]):
            return _not_found(request, principal, f"No system with id {system_id}.")
        return _render(request, "admin_points.html", principal=principal, page="admin-points",
                       title=f"Points · {s['display_name']}", admin_pages=ADMIN_PAGES,
                       system={"id": s["id"], "name": s["display_name"], "vendor": s["vendor_type"]})

    @app.get("/admin/sessions", response_class=HTMLResponse, include_in_schema=False)
    def admin_sessions(request: Request) -> Response:
        return _page(request, "admin_sessions.html", "admin-sessions", "Admin · sessions")

    @app.get("/admin/users", response_class=HTMLResponse, include_in_schema=False)
    def admin_users(request: Request) -> Response:
        return _page(request, "admin_users.html", "admin-users", "Admin · users", roles=USER_ROLES)

    @app.get("/admin/connection-test", response_class=HTMLResponse, include_in_schema=False)
    def admin_connection_test(request: Request) -> Response:
        vendors = [{"type": v, "fields": credential_fields(v)} for v in SETUP_VENDORS]
        return _page(request, "admin_connection_test.html", "admin-connection-test", "Admin · connection test",
                     vendors=vendors)

    @app.get("/admin/database", response_class=HTMLResponse, include_in_schema=False)
    def admin_database(request: Request) -> Response:
        return _page(request, "admin_database.html", "admin-database", "Admin · database")

"""Dashboard pages of monitored systems (seed 003, issue 11 item 10).

* ``/systems``: the caller's systems (owned, shared, all for an admin) with their
  health dots — green under 5 minutes since the last successful poll, yellow 5–15,
  red beyond (:func:`wattline.domain.system_health.poll_health`, on the server's
  clock) — and the composite selector (``/api/composite``).
* ``/systems/{id}`` and ``/composites/{slug or id}``: the point grid
  (``/api/data/latest``), the power chart with the 1H…30D selector
  (``/api/data/historical``) and the energy-flow Sankey now and over the chosen
  range (``/api/data/flows``), drawn as inline SVG (``static/sankey.js``).
  A system's owner (or an admin) shares it from its page
  (``POST /api/data/systems/{id}/shares``, ``DELETE …/shares/{username}``).
* ``/setup``: the setup wizard (vendor → credentials → test connection → points
  preview → save), calling ``POST /api/test-connection`` and ``POST /api/setup``.

The pages are shells filled by ``static/systems.js`` and ``static/setup.js`` (no
inline script: the CSP allows scripts from this origin only). A system or composite
the caller may not read is a 404 page, as the API answers.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from wattline import clock, system_admin
from wattline.api.composite_access import readable_composite
from wattline.api.routes.energy_flow import RANGES_S
from wattline.domain import system_health
from wattline.security.principal import Principal
from wattline.security.roles import role_at_least
from wattline.security.system_access import can_read_system, can_write_system
from wattline.sources.vendors.registry import get_adapter_class
from wattline.store import systems_repo, users_repo
from wattline.web.pages import _int_or_none, _not_found, _render, _to_login, _user

SETUP_VENDORS = ("selectronic", "solaredge", "fronius", "mondo", "enphase", "amber", "solarman", "sungrow")
CHART_RANGES = tuple(RANGES_S)  # 1H 6H 24H 7D 30D


def visible_systems(request: Request, principal: Principal) -> list[dict]:
    """The systems the caller may read, with effective status and last success (ms)."""
    c = request.app.state.ctx
    with c.dbs.main_reader.connect() as conn:
        if principal.kind != "cron" and role_at_least(principal.role, "admin"):
            rows = system_admin.systems_with_status(conn, c.dbs.telemetry)
        else:
            user = users_repo.by_username(conn, principal.name) if principal.kind == "user" else None
            if user is None:
                return []
            rows = system_admin.systems_with_status(conn, c.dbs.telemetry, visible_to_user_id=user["id"])
    return [r for r in rows if can_read_system(principal, r)]


def system_rows(rows: list[dict], now_s: float) -> list[dict]:
    """What the systems table shows of each system, health dot included."""
    out = []
    for r in rows:
        last_s = None if r.get("last_success_ms") is None else r["last_success_ms"] / 1000.0
        health = system_health.poll_health(last_s, now_s)
        out.append({"id": r["id"], "name": r["display_name"], "alias": r["alias"], "owner": r["owner"],
                    "vendor": r["vendor_type"], "site": r["vendor_site_id"], "timezone": r["timezone"],
                    "status": r["status"], "is_default": bool(r["is_default"]), "health": health,
                    "health_label": system_health.LABELS[health],
                    "last_success_ms": r.get("last_success_ms"),
                    "age": system_health.age_text(last_s, now_s)})
    return out


OAUTH_VENDORS = {"enphase"}  # the wizard authorizes at the vendor (POST /api/setup/enphase)
OAUTH_TOKEN_FIELDS = {"access_token", "refresh_token", "access_expires_at"}


def credential_fields(vendor: str) -> list[dict]:
    """The credential fields of a vendor's adapter model: name, required, secret."""
    model = get_adapter_class(vendor).credentials_model
    fields = []
    for name, f in model.model_fields.items():
        text = str(f.annotation)
        fields.append({"name": name, "required": f.is_required(), "secret": "SecretStr" in text})
    return fields


def mount(app: FastAPI) -> None:
    """Add the system pages to ``app``."""

    @app.get("/systems", response_class=HTMLResponse, include_in_schema=False)
    def systems_page(request: Request) -> Response:
        principal = _user(request)
        if principal is None:
            return _to_login(request)
        now_s = clock.now()
        rows = system_rows(visible_systems(request, principal), now_s)
        return _render(request, "systems.html", principal=principal, page="systems", title="Systems",
                       systems=rows, now_s=int(now_s), can_setup=role_at_least(principal.role, "user"))

    @app.get("/systems/{system_id}", response_class=HTMLResponse, include_in_schema=False)
    def system_page(request: Request, system_id: str) -> Response:
        principal = _user(request)
        if principal is None:
            return _to_login(request)
        sid = _int_or_none(system_id)
        s = None
        if sid is not None and sid > 0:
            with request.app.state.ctx.dbs.main_reader.connect() as conn:
                s = systems_repo.system(conn, sid)
        if s is None or not can_read_system(principal, s):
            return _not_found(request, principal, f"No system with id {system_id}.")
        return _render(request, "systems_detail.html", principal=principal, page="system", title=s["display_name"],
                       view={"kind": "system", "id": s["id"], "ref": str(s["id"]), "name": s["display_name"],
                             "sub": f"{s['vendor_type']} · site {s['vendor_site_id']} · {s['owner']}",
                             "timezone": s["timezone"]},
                       ranges=CHART_RANGES, can_share=can_write_system(principal, s),
                       shared_with=sorted(s["shared_with"]))

    @app.get("/composites/{ref}", response_class=HTMLResponse, include_in_schema=False)
    def composite_page(request: Request, ref: str) -> Response:
        principal = _user(request)
        if principal is None:
            return _to_login(request)
        g = None
        if len(ref) <= 64:
            with request.app.state.ctx.dbs.main_reader.connect() as conn:
                g = readable_composite(conn, principal, ref)
        if g is None:
            return _not_found(request, principal, f"No composite {ref}.")
        names = ", ".join(m["display_name"] for m in g["members"]) or "no members"
        tz = g["members"][0]["timezone"] if g["members"] else "UTC"
        return _render(request, "systems_detail.html", principal=principal, page="composite", title=g["name"],
                       view={"kind": "composite", "id": g["id"], "ref": g["slug"] or str(g["id"]),
                             "name": g["name"], "sub": f"composite of {names}", "timezone": tz,
                             "members": [m["id"] for m in g["members"]]},
                       ranges=CHART_RANGES)

    @app.get("/setup", response_class=HTMLResponse, include_in_schema=False)
    def setup_page(request: Request) -> Response:
        principal = _user(request)
        if principal is None:
            return _to_login(request)
        if not role_at_least(principal.role, "user"):  # a viewer is told why, nothing to fill in
            return _render(request, "error.html", principal=principal, page="setup", title="Add a system",
                           message="Only users and admins add systems; a viewer sees the systems shared with them.")
        vendors = []
        for v in SETUP_VENDORS:
            try:
                fields = credential_fields(v)
                oauth = v in OAUTH_VENDORS  # tokens come from the owner's authorization, not the form
                vendors.append({"type": v, "oauth": oauth,
                                "fields": [f for f in fields if not (oauth and f["name"] in OAUTH_TOKEN_FIELDS)]})
            except Exception:  # noqa: BLE001 - a vendor without an adapter is not offered
                continue
        return _render(request, "setup.html", principal=principal, page="setup", title="Add a system",
                       vendors=vendors, is_admin=role_at_least(principal.role, "admin"))

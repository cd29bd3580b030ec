"""Dashboard routes: sign-in, the pages, and the static files they load.

The pages are Jinja2 shells; their script (``static/app.js``) fetches the JSON API
with the session cookie. Plotly.js is read from the installed ``plotly`` package
and served from ``/static/plotly.min.js``: no CDN, so the dashboard works offline.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from dataclasses import dataclass
from importlib import metadata, resources
from urllib.parse import quote

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from wattline.security import csrf, sessions, users
from wattline.security.headers import CSP  # noqa: F401 - kept importable from here
from wattline.security.deps import get_principal
from wattline.security.principal import Principal
from wattline.security.roles import role_at_least
from wattline.security.signin_throttle import SigninThrottle
from wattline.store import plant_queries

SYNC_STATUSES = ("success", "error", "partial")
LOGIN_ERROR = "Invalid username or password."
_MAX_FIELD = 2048  # form fields longer than this are refused without hashing anything

# the security headers (CSP, frame, sniffing, referrer) are set on every response by
# wattline.security.headers; pages add only their caching rule
PAGE_HEADERS = {"Cache-Control": "no-store"}
_IMMUTABLE = "public, max-age=31536000, immutable"
_MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon"}


# ------------------------------------------------------------------ static files


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    media_type: str
    etag: str


def _asset(body: bytes, name: str, compress: bool) -> Asset:
    ext = name[name.rfind("."):] if "." in name else ""
    media_type = _MEDIA_TYPES.get(ext, "application/octet-stream")
    gz = gzip.compress(body, 6, mtime=0) if compress and media_type.startswith("text/") else None
    return Asset(body, gz if gz is not None and len(gz) < len(body) else None, media_type,
                 '"' + hashlib.sha256(body).hexdigest()[:20] + '"')


class Assets:
    """Our static files (read at mount) and Plotly.js (read on first request), in memory."""

    PLOTLY = "plotly.min.js"

    def __init__(self) -> None:
        folder = resources.files("wattline.web") / "static"
        self._files: dict[str, Asset] = {}
        for entry in folder.iterdir():
            if entry.is_file() and not entry.name.startswith("."):
                self._files[entry.name] = _asset(entry.read_bytes(), entry.name, compress=True)
        try:
            self.plotly_version = metadata.version("plotly")
        except metadata.PackageNotFoundError:  # pragma: no cover - plotly is a dependency
            self.plotly_version = "0"
        self._lock = threading.Lock()

    def get(self, name: str) -> Asset | None:
        if name == self.PLOTLY and name not in self._files:
            with self._lock:
                if name not in self._files:
                    path = resources.files("plotly") / "package_data" / "plotly.min.js"
                    self._files[name] = _asset(path.read_bytes(), name, compress=True)
        return self._files.get(name)

    def url(self, name: str) -> str:
        """A cache-busting URL: the content hash (ours) or the package version (Plotly)."""
        if name == self.PLOTLY:
            return f"/static/{name}?v={quote(self.plotly_version)}"
        a = self._files.get(name)
        return f"/static/{name}?v={a.etag.strip(chr(34))[:12]}" if a else f"/static/{name}"


def _serve_asset(request: Request, asset: Asset) -> Response:
    headers = {"Cache-Control": _IMMUTABLE, "ETag": asset.etag, "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    accepts_gzip = "gzip" in request.headers.get("accept-encoding", "").lower()
    if asset.gzipped is not None and accepts_gzip:
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


# ------------------------------------------------------------------ helpers

_env = Environment(loader=PackageLoader("wattline.web", "templates"), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)


def _user(request: Request) -> Principal | None:
    """The signed-in caller allowed to see the dashboard (any role from viewer up)."""
    p = get_principal(request)
    if p is None or p.kind == "cron" or not role_at_least(p.role, "viewer"):
        return None
    return p


def safe_next(target: str | None) -> str:
    """A local path to return to after sign-in; anything else (other hosts, schemes) → "/"."""
    if not target or len(target) > 1024 or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    if any(c in target for c in "\r\n\t\\") or target.startswith("/login") or target.startswith("/logout"):
        return "/"
    return target


def _to_login(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = "/login" if here == "/" else f"/login?next={quote(here, safe='')}"
    return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})


def _render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
    assets: Assets = request.app.state.web_assets
    principal = context.pop("principal", None)
    cookie = request.cookies.get(sessions.COOKIE_NAME)
    # the token of the cookie this page was loaded with: api() sends it back (security.csrf)
    token = csrf.token_for(request.app.state.ctx.settings.encryption_key, cookie) if principal and cookie else None
    html = _env.get_template(template).render(
        asset=assets.url, principal=principal, csrf_token=token,
        is_superadmin=bool(principal and principal.kind == "user" and role_at_least(principal.role, "superadmin")),
        **context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def _int_or_none(text: str | None) -> int | None:
    if text is None or not text.strip().lstrip("-").isdigit() or len(text) > 18:
        return None
    return int(text)


def _not_found(request: Request, principal: Principal, what: str) -> HTMLResponse:
    return _render(request, "error.html", 404, principal=principal, title="Not found", message=what)


def _set_session(request: Request, response: Response, principal: Principal) -> None:
    key = request.app.state.ctx.settings.encryption_key
    response.set_cookie(sessions.COOKIE_NAME, sessions.issue_session(key, principal), max_age=sessions.DEFAULT_TTL_S,
                        path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https")


# ------------------------------------------------------------------ routes


def mount(app: FastAPI) -> None:
    """Add the dashboard's routes to ``app``."""
    app.state.web_assets = Assets()
    app.state.signin_throttle = SigninThrottle()

    @app.get("/static/{name}", include_in_schema=False)
    def static_file(request: Request, name: str) -> Response:
        asset = request.app.state.web_assets.get(name)
        if asset is None:
            return Response("not found", status_code=404, media_type="text/plain")
        return _serve_asset(request, asset)

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, next: str | None = None) -> Response:
        target = safe_next(next)
        if _user(request) is not None:
            return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
        return _render(request, "login.html", next=target, username="", error=None)

    @app.post("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_submit(request: Request, username: str = Form(""), password: str = Form(""),
                     next: str = Form("/")) -> Response:
        # a plain def: argon2 runs in the thread pool, not on the event loop
        if not csrf.same_origin(request.headers):
            # login CSRF: another site must not sign a visitor into an account of its choosing
            return csrf.refusal("sign-in from another origin refused")
        target = safe_next(next)
        throttle: SigninThrottle = request.app.state.signin_throttle
        address = request.client.host if request.client else "?"
        refused = throttle.check(username[:_MAX_FIELD], address)
        if refused is not None:  # before any hashing: a guessing run costs us nothing
            minutes = max(1, round(refused.retry_after_s / 60))
            response = _render(request, "login.html", 429, next=target, username=username[:120],
                               error=f"Too many failed sign-ins. Try again in {minutes} minute"
                                     f"{'s' if minutes > 1 else ''}.")
            response.headers["Retry-After"] = str(refused.retry_after_s)
            return response
        principal = None
        if username and password and len(username) <= _MAX_FIELD and len(password) <= _MAX_FIELD:
            with request.app.state.ctx.dbs.main.begin() as conn:
                principal = users.authenticate(conn, username, password, rehash=True)
        if principal is None:
            throttle.failed(username[:_MAX_FIELD], address)
            # one message and status for an unknown user and a wrong password
            return _render(request, "login.html", 401, next=target, username=username[:120], error=LOGIN_ERROR)
        throttle.succeeded(username, address)
        response = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
        _set_session(request, response, principal)
        return response

    def _signed_out(request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303, headers={"Cache-Control": "no-store"})
        response.delete_cookie(sessions.COOKIE_NAME, path="/", httponly=True, samesite="lax",
                               secure=request.url.scheme == "https")
        return response

    @app.get("/logout", include_in_schema=False)
    def logout_page(request: Request) -> Response:
        # a GET changes nothing (a link or image on another site could send one):
        # a signed-in visitor gets the sign-out button, anyone else the sign-in page
        principal = _user(request)
        if principal is None:
            return _signed_out(request)
        return _render(request, "logout.html", principal=principal, page="logout", title="Sign out")

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf_token: str = Form("")) -> Response:
        cookie = csrf.session_cookie(request.headers)
        presented = csrf_token or request.headers.get(csrf.HEADER)
        if cookie is not None and not csrf.token_matches(request.app.state.ctx.settings.encryption_key, cookie,
                                                         presented):
            return csrf.refusal()  # another site may not sign a visitor out either
        return _signed_out(request)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def plants_page(request: Request) -> Response:
        principal = _user(request)
        if principal is None:
            return _to_login(request)
        return _render(request, "plants.html", principal=principal, page="plants", title="Plants")

    @app.get("/plants/{plant_id}", response_class=HTMLResponse, include_in_schema=False)
    def plant_page(request: Request, plant_id: str) -> Response:
        principal = _user(request)
        if principal is None:
            return _to_login(request)
        pid = _int_or_none(plant_id)
        plant = plant_queries.plant(request.app.state.ctx.dbs.main_reader, pid) if pid is not None else None
        if plant is None:
            return _not_found(request, principal, f"No plant with id {plant_id}.")
        return _render(request, "plant.html", principal=principal, page="plant", title=plant["name"],
                       plant={"id": plant["id"], "name": plant["name"], "vendor": plant.get("vendor_type"),
                              "timezone": plant["timezone"]})

    @app.get("/work-orders/{work_order_id}", response_class=HTMLResponse, include_in_schema=False)
    def work_order_page(request: Request, work_order_id: str) -> Response:
        principal = _user(request)
        if principal is None:
            return _to_login(request)
        wid = _int_or_none(work_order_id)
        wo = plant_queries.work_order(request.app.state.ctx.dbs.main_reader, wid) if wid is not None else None
        if wo is None:
            return _not_found(request, principal, f"No work order with id {work_order_id}.")
        return _render(request, "work_order.html", principal=principal, page="work-order", title=wo["name"],
                       work_order={"id": wo["id"], "name": wo["name"]})

    @app.get("/jobs", response_class=HTMLResponse, include_in_schema=False)
    def jobs_page(request: Request) -> Response:
        principal = _user(request)
        if principal is None:
            return _to_login(request)
        from wattline.jobs.engine_status import failed_jobs, running_jobs

        settings = request.app.state.ctx.settings
        engine_failed = None
        if principal.kind == "user" and role_at_least(principal.role, "admin"):  # arguments are admin-only
            engine_failed = failed_jobs(settings)
        engine_running = running_jobs(settings)  # no arguments: for everyone who sees the jobs
        for j in engine_running or ():
            j["progress_text"] = progress_text(j["progress"])
        return _render(request, "jobs.html", principal=principal, page="jobs", title="Jobs",
                       engine_failed=engine_failed, engine_running=engine_running)

    @app.get("/sync-logs", response_class=HTMLResponse, include_in_schema=False)
    def sync_logs_page(request: Request, plant_id: str | None = None, status: str | None = None,
                       limit: str | None = None) -> Response:
        principal = _user(request)
        if principal is None:
            return _to_login(request)
        plants = [{"id": p["id"], "name": p["name"]}
                  for p in plant_queries.plants(request.app.state.ctx.dbs.main_reader)]
        n = _int_or_none(limit)
        filters = {"plant_id": _int_or_none(plant_id),
                   "status": status if status in SYNC_STATUSES else None,
                   "limit": n if n is not None and 1 <= n <= 1000 else 100}
        return _render(request, "sync_logs.html", principal=principal, page="sync-logs", title="Sync logs",
                       plants=plants, filters=filters, statuses=SYNC_STATUSES)


def progress_text(p: dict | None) -> str:
    """A job's progress in words, as app.js's jobProgress puts an in-process one's: a
    backfill's chunks and records, else every ``X_done`` of ``X`` it reports."""
    if not p:
        return "running"
    if p.get("totalChunks"):
        text = f"chunk {p.get('chunk') or 0}/{p['totalChunks']} · {p.get('records') or 0:,} records"
        return text + (" · paused by the vendor's rate limit" if p.get("pausedUntil") else "")
    done = [f"{k[:-5]} {p[k]}/{p[k[:-5]]}" for k in p if k.endswith("_done") and k[:-5] in p]
    return " · ".join(done) or "running"

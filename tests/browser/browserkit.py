"""What the browser tests share: where Debian's chromium is and how it is started, the
app served by uvicorn on a free loopback port, and a page that collects console errors.
The ``browser`` fixture itself is in this folder's conftest.py."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("WATTLINE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def needs_chromium() -> None:
    """Skip (before building a module's world) where chromium is not installed."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} missing (apt-get install chromium)")


class _Server:
    """uvicorn serving the app (lifespan on) on a daemon thread, on a free 127.0.0.1 port;
    a stop does not wait for the browser's idle keep-alive connections (graceful
    shutdown of 1 s). Started at once; also a context manager."""

    def __init__(self, app):
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.base_url = self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on",
                                                    timeout_graceful_shutdown=1))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True,
                                       name=f"dashboard-{self.port}")
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the dashboard server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def __enter__(self) -> "_Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(ctx):
    """Generator for a module's server fixture: the app of ``ctx`` served until the
    module ends, then the server stopped and ``ctx`` closed (``yield from serve(ctx)``)."""
    from wattline.api.app import create_app

    srv = _Server(create_app(ctx))
    try:
        yield srv
    finally:
        srv.stop()
        ctx.close()


class Watched:
    """A page whose console errors and uncaught exceptions are collected."""

    def __init__(self, context, base_url):
        self.context = context
        self.page = context.new_page()
        self.base = base_url
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}")
                     if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def goto(self, path: str):
        return self.page.goto(self.base + path, wait_until="load")

    def sign_in(self, username: str, password: str, path="/"):
        self.goto(path)
        self.page.fill("#username", username)
        self.page.fill("#password", password)
        with self.page.expect_navigation():
            self.page.click("button[type=submit]")

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def api(self, path: str) -> dict:
        r = self.page.request.get(self.base + path)
        assert r.ok, (path, r.status, r.text())
        return r.json()

    def assert_clean(self, allow: tuple[str, ...] = ()) -> None:
        errors = [e for e in self.errors if not any(a in e for a in allow)]
        assert errors == [], errors


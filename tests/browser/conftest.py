"""The browser tests' chromium: one headless browser per module (browserkit.py has the rest)."""

from __future__ import annotations

import pytest

from browserkit import CHROMIUM, CHROMIUM_ARGS, SHOTS, needs_chromium


@pytest.fixture(scope="module")
def browser(request):
    needs_chromium()
    for world in ("server", "world"):  # built first: its setup may run an event loop, Playwright's holds one
        if world in request.fixturenames:
            request.getfixturevalue(world)
    sync_api = pytest.importorskip("playwright.sync_api")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()

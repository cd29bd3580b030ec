"""The device pages in headless chromium (Debian's), driven by Playwright for Python.

A campus on SQLite: classroom CR-101 with two devices fed two days of counter readings
through the device pipeline; controller ESP01 online (status and a heartbeat just now),
ESP02 online then offline (its Last Will). The pages must show the state, the last
heartbeat's firmware and rssi, the offline spell, and the daily energy bars (also of
the offline device), the same numbers as the JSON API.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browserkit import Watched, needs_chromium, serve  # noqa: E402

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api")

VIEWER, VIEWER_PW = "campus-viewer", "campus viewer battery staple"
TZ = "Asia/Kolkata"
STEP = 300


def _docs(esp: str, dev: str, start: int, end: int, wh_per_step: float) -> list[dict]:
    from wattline.domain import timeutil

    out = []
    for k, ts in enumerate(range(start, end, STEP)):
        out.append({"esp32_name": esp, "classroom": "CR-101", "device_id": dev, "timestamp": timeutil.iso(ts),
                    "power_w": 40.0, "energy_wh_total": round(1000 + k * wh_per_step, 3),
                    "switch_state": {"sw1": True}, "uptime_seconds": 100 + k * STEP, "sequence_no": k})
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from wattline import clock, provisioning
    from wattline.config import Settings
    from wattline.context import open_context
    from wattline.jobs.controller_status import Received, record_messages
    from wattline.jobs.device_telemetry import ingest_payloads
    from wattline.security import users
    from wattline.sources.devices import parse_documents

    needs_chromium()
    ctx = open_context(Settings(data_dir=tmp_path_factory.mktemp("devices"), main_url=None, telemetry_url=None))
    now = clock.now_s()
    with ctx.dbs.main.begin() as conn:
        provisioning.add_classroom(conn, "CR-101", TZ)
        provisioning.add_device(conn, "ESP01", "light_1", "CR-101", switch="sw1")
        provisioning.add_device(conn, "ESP02", "fan_1", "CR-101", switch="sw1")
        users.create_user(conn, VIEWER, VIEWER_PW, "viewer")
    start = (now - 2 * 86400) // STEP * STEP
    for esp, dev, wh in (("ESP01", "light_1", 3.0), ("ESP02", "fan_1", 5.0)):
        docs = _docs(esp, dev, start, now - 600, wh)
        payloads, errors = parse_documents(docs)
        assert not errors
        ingest_payloads(ctx.pipeline, ctx.dbs.main_reader, 1, payloads, docs, source="http")
    record_messages(ctx.dbs.telemetry, 1, [
        Received(b"online", "status", "ESP01", now - 500),
        Received(b'{"wifi_rssi": -52, "firmware_ver": "v2.3.1", "uptime_seconds": 4000}', "heartbeat", "ESP01", now),
        Received(b'{"status": "online"}', "status", "ESP02", now - 3000),
        Received(b'{"esp32_name": "ESP02", "status": "offline"}', "status", "ESP02", now - 1200),
    ], source="mqtt")
    yield from serve(ctx)


@pytest.fixture
def viewer(browser, server):
    w = Watched(browser.new_context(viewport={"width": 1280, "height": 900}), server.base_url)
    w.sign_in(VIEWER, VIEWER_PW, path="/devices")
    yield w
    w.context.close()


def test_the_devices_list_shows_each_device_online_or_offline(viewer):
    page = viewer.page
    assert page.url.endswith("/devices")
    page.wait_for_selector("[data-testid=device-row]")
    rows = page.get_by_test_id("device-row")
    assert rows.count() == 2
    states = {rows.nth(i).locator("a").inner_text(): rows.nth(i).get_attribute("data-state") for i in range(2)}
    assert states == {"ESP01 / light_1": "online", "ESP02 / fan_1": "offline"}
    assert page.get_by_test_id("devices-counts").inner_text() == "1 online, 1 offline"
    assert page.locator("nav a[aria-current=page]").inner_text() == "Devices"
    viewer.shot("devices")
    viewer.assert_clean()


def test_a_device_page_shows_state_heartbeat_and_daily_energy(viewer):
    page = viewer.page
    viewer.goto("/devices/ESP01/light_1")
    page.wait_for_selector("#chart-device-daily[data-state=ready]", timeout=20_000)
    api = viewer.api("/api/power-analytics/devices/ESP01/light_1")
    assert page.get_by_test_id("device-state").inner_text() == "online"
    assert page.get_by_test_id("firmware").inner_text() == "v2.3.1"
    assert page.get_by_test_id("rssi").inner_text() == "-52"
    assert page.get_by_test_id("last-seen").inner_text() != "never"
    bars = [d for d in api["days"] if d["energy_kwh"] is not None]
    assert 2 <= len(bars) <= 3  # two days of readings span two or three local days
    assert int(page.get_by_test_id("chart-device-daily").get_attribute("data-bars")) == len(bars)
    assert page.get_by_test_id("energy-total").inner_text() == f"{api['energy_kwh']:.3f}"
    # 3 Wh every 5 minutes over the readings' span
    assert api["energy_kwh"] == pytest.approx(3.0 * (sum(d["ledger_entries"] for d in bars)) / 1000)
    assert page.get_by_test_id("spell-row").count() == 0
    viewer.shot("device-online")
    viewer.assert_clean()


def test_an_offline_device_shows_its_spell_and_still_its_history(viewer):
    page = viewer.page
    viewer.goto("/devices/ESP02/fan_1")
    page.wait_for_selector("#chart-device-daily[data-state=ready]", timeout=20_000)
    assert page.get_by_test_id("device-state").inner_text() == "offline"
    assert page.get_by_test_id("state-dot").get_attribute("aria-label") == "offline"
    spells = page.get_by_test_id("spell-row")
    assert spells.count() == 1 and "still offline" in spells.first.inner_text()
    assert [i.inner_text().split(" · ")[1] for i in page.get_by_test_id("history-item").all()] == ["offline", "online"]
    api = viewer.api("/api/power-analytics/devices/ESP02/fan_1")
    assert int(page.get_by_test_id("chart-device-daily").get_attribute("data-bars")) >= 2
    assert api["energy_kwh"] > 0 and page.get_by_test_id("energy-total").inner_text() == f"{api['energy_kwh']:.3f}"
    viewer.shot("device-offline")
    viewer.assert_clean()


def test_an_unknown_device_is_a_404_page(viewer):
    resp = viewer.goto("/devices/ESP09/nothing")
    assert resp.status == 404

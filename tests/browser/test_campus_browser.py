"""The classroom pages in headless chromium (Debian's), driven by Playwright for Python.

A temp SQLite pair with classroom CR-101 fed the fleet of ``test_campus_analytics``
(three devices, switches off at lunch, a cost version from 14:02:30), served by
uvicorn on loopback. The page's cards must equal the summary endpoint's answer, the
chart's bars the timeline endpoint's buckets, the table the device breakdown, for
each bucket width and after picking another day. Every test also fails on a console
error or an uncaught page error.
"""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api")

from helpers import make_sqlite  # noqa: E402
from browserkit import SHOTS, _Server, needs_chromium  # noqa: E402

USER, PASSWORD = "viewer", "viewer horse battery staple"
API = "/api/power-analytics"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from test_campus_analytics import DAY, NOW, TZ, _add_versions, _fleet
    from world import make_ctx
    from wattline import clock, provisioning
    from wattline.api.app import create_app
    from wattline.jobs.device_telemetry import ingest_documents
    from wattline.security import users

    needs_chromium()
    tmp = tmp_path_factory.mktemp("campus-browser")
    dbs = make_sqlite(tmp)
    ctx = make_ctx(dbs, tmp)
    with dbs.main.begin() as conn:
        org = provisioning.organization_named(conn)
        provisioning.add_classroom(conn, "CR-101", TZ)
        provisioning.add_classroom(conn, "CR-102", TZ)
        for esp, dev, method in (("ESP01", "light_1", "counter"), ("ESP02", "light_2", "counter"),
                                 ("ESP01", "fan_1", "power")):
            provisioning.add_device(conn, esp, dev, "CR-101", switch="sw1", method=method)
        provisioning.add_device(conn, "ESP09", "light_9", "CR-102", switch="sw1")
        users.create_user(conn, USER, PASSWORD, "viewer")
    docs = [d for key, ds in _fleet().items() for d in ds]
    result, errors = ingest_documents(ctx.pipeline, dbs.main_reader, org, docs, source="http", now=NOW)
    assert not errors and not result.unknown_device
    _add_versions(dbs)
    offset = clock.now() - time.time()  # the session's clock (pytest --clock), put back after
    clock.set_now(NOW)  # "today" on the page is then a day without data; the tests pick DAY
    try:
        with _Server(create_app(ctx)) as srv:
            srv.day = DAY.isoformat()
            yield srv
    finally:
        clock.set_now(time.time() + offset)
        dbs.dispose()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    errors: list[str] = []
    p.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    p.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    p.goto(server.url + "/classrooms", wait_until="load")
    assert "/login" in p.url
    p.fill("#username", USER)
    p.fill("#password", PASSWORD)
    with p.expect_navigation():
        p.click("button[type=submit]")
    yield p
    context.close()
    assert errors == [], errors


def _api(page, server, path: str, **params) -> dict:
    r = page.request.get(server.url + API + path, params=params)
    assert r.ok, (path, r.status, r.text())
    return r.json()


def _cards(page) -> dict[str, str]:
    return {t: page.get_by_test_id(t).get_attribute("data-value")
            for t in ("card-energy", "card-cost", "card-on-time", "card-devices", "card-quality")}


def _bars(page) -> list[tuple[str, float]]:
    """(x, y) of every bar Plotly drew in the timeline chart, by x."""
    traces = page.evaluate("""() => document.getElementById('chart-timeline').data
        .map(t => ({x: Array.from(t.x), y: Array.from(t.y), type: t.type}))""")
    assert traces and all(t["type"] == "bar" for t in traces)
    return sorted((x, y) for t in traces for x, y in zip(t["x"], t["y"]))


def _wait_ready(page, buckets: int) -> None:
    page.wait_for_selector(f"#chart-timeline[data-state=ready][data-buckets='{buckets}']", timeout=20_000)
    page.wait_for_function("document.querySelector('[data-testid=status]').textContent === ''", timeout=20_000)


def test_classrooms_list_links_to_the_pages(page, server):
    rows = page.get_by_test_id("classroom-row")
    rows.first.wait_for()
    listed = _api(page, server, "/classrooms")["classrooms"]
    assert rows.count() == len(listed) == 2
    assert [rows.nth(i).get_attribute("data-classroom") for i in range(2)] == ["CR-101", "CR-102"]
    with page.expect_navigation():
        page.click("text=CR-101")
    # without a date the page shows the classroom's today (by the test's clock)
    assert page.url.endswith("/classrooms/CR-101?date=2025-11-13")
    assert page.get_by_test_id("date-picker").input_value() == "2025-11-13"


def test_cards_equal_the_summary_and_bars_the_timeline(page, server):
    page.goto(server.url + f"/classrooms/CR-101?date={server.day}", wait_until="load")
    _wait_ready(page, 24)
    s = _api(page, server, "/summary", classroom="CR-101", date=server.day)
    assert s["energy_milli_wh"] > 0 and s["cost_micro"] > 0
    cards = _cards(page)
    assert float(cards["card-energy"]) == s["energy_kwh"]
    assert float(cards["card-cost"]) == s["cost"]
    assert int(cards["card-on-time"]) == s["on_time_sec"]
    assert int(cards["card-devices"]) == s["devices"] == 3
    assert float(cards["card-quality"]) == s["quality"]["high_confidence_pct"]
    # what is shown is the same number, rounded for display
    assert page.get_by_test_id("card-energy").inner_text().replace(",", "") == f"{s['energy_kwh']:.3f}"
    assert page.get_by_test_id("card-currency").inner_text() == s["currency"] == "INR"
    # the fan is integrated from power: a third of the energy is estimated
    assert page.get_by_test_id("estimated-badge").is_visible() is s["quality"]["estimated"]
    assert float(page.get_by_test_id("estimated-kwh").get_attribute("data-value")) == s["quality"]["estimated_kwh"]

    b = _api(page, server, "/device-breakdown", classroom="CR-101", date=server.day)
    rows = page.get_by_test_id("device-row")
    assert rows.count() == len(b["devices"]) == 3
    for i, d in enumerate(b["devices"]):
        row = rows.nth(i)
        assert (row.get_attribute("data-esp32"), row.get_attribute("data-device")) == (d["esp32_name"], d["device_id"])
        assert float(row.get_by_test_id("device-energy").get_attribute("data-value")) == d["energy_kwh"]
        assert float(row.get_by_test_id("device-cost").get_attribute("data-value")) == d["cost"]
        assert (row.get_by_test_id("device-estimated").count() == 1) is d["quality"]["estimated"]
    page.screenshot(path=str(SHOTS / "classroom.png"), full_page=True)

    for minutes, n in ((60, 24), (15, 96), (1440, 1), (5, 288)):
        if minutes != 60:
            page.select_option("[data-testid=bucket-select]", str(minutes))
            _wait_ready(page, n)
        t = _api(page, server, "/timeline", classroom="CR-101", start=server.day, end=server.day, bucket=minutes)
        expected = sorted((x["start"][:19].replace("T", " "), x["energy_kwh"]) for x in t["buckets"])
        assert _bars(page) == expected, minutes
        # the bars add up to the card, exactly, in the integers they are made of
        assert sum(round(y * 1_000_000) for _x, y in _bars(page)) == s["energy_milli_wh"]


def test_another_day_from_the_date_picker(page, server):
    page.goto(server.url + f"/classrooms/CR-101?date={server.day}", wait_until="load")
    _wait_ready(page, 24)
    page.fill("[data-testid=date-picker]", "2025-11-04")
    page.dispatch_event("[data-testid=date-picker]", "change")
    page.wait_for_selector("[data-testid=cards][data-date='2025-11-04']", timeout=20_000)
    _wait_ready(page, 24)
    s = _api(page, server, "/summary", classroom="CR-101", date="2025-11-04")
    assert float(_cards(page)["card-energy"]) == s["energy_kwh"] > 0
    assert page.url.endswith("?date=2025-11-04")
    bars = _bars(page)
    assert bars[0][0] == "2025-11-04 00:00:00" and sum(round(y * 1e6) for _x, y in bars) == s["energy_milli_wh"]


def test_unknown_classroom_page_is_404(page, server):
    r = page.request.get(server.url + "/classrooms/CR-999")  # (a navigation would log the 404 as an error)
    assert r.status == 404 and "No classroom CR-999" in r.text()


def test_the_classroom_page_fits_a_phone(browser, server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    try:
        p = context.new_page()
        p.goto(server.url + f"/login?next=/classrooms/CR-101%3Fdate%3D{server.day}", wait_until="load")
        p.fill("#username", USER)
        p.fill("#password", PASSWORD)
        with p.expect_navigation():
            p.click("button[type=submit]")
        _wait_ready(p, 24)
        assert p.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        s = _api(p, server, "/summary", classroom="CR-101", date=server.day)
        assert float(_cards(p)["card-energy"]) == s["energy_kwh"]
        p.screenshot(path=str(SHOTS / "classroom-phone.png"), full_page=True)
    finally:
        context.close()

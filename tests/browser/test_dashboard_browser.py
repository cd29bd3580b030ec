"""The dashboard in headless chromium (Debian's), driven by Playwright for Python.

One server for the module: a temp data dir with the demo's work order 456 (plants 123,
124, 125) backfilled over 40 days from the emulated vendor clouds, served by uvicorn on
a free loopback port. Every test also fails on a console error or an uncaught page error.
Screenshots of each page go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api")

from browserkit import Watched, needs_chromium, serve  # noqa: E402

ADMIN, ADMIN_PW = "admin", "correct horse battery staple"
VIEWER, VIEWER_PW = "viewer", "viewer horse battery staple"
PLANT, WORK_ORDER = 123, 456
CARD_FIELDS = {"card-daily": "daily_energy_kwh", "card-monthly": "monthly_energy_mwh",
               "card-yearly": "yearly_energy_mwh", "card-total": "total_energy_mwh", "card-power": "current_power_kw"}
CARD_DIGITS = {"card-daily": 1, "card-monthly": 3, "card-yearly": 3, "card-total": 3, "card-power": 1}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from rich.console import Console

    from wattline import clock, demo
    from wattline.config import Settings
    from wattline.context import open_context
    from wattline.jobs import synclog
    from wattline.security import users

    needs_chromium()
    data = tmp_path_factory.mktemp("dashboard")
    ctx = open_context(Settings(data_dir=data, main_url=None, telemetry_url=None))
    since = clock.now_s() - 40 * 86400
    with demo.BackgroundCloud(demo.cloud_config(since), port=0) as cloud:
        demo.set_up(ctx, cloud.base_url, since)
        asyncio.run(demo.backfill_all(ctx, Console(quiet=True)))
        with ctx.dbs.main.begin() as conn:
            users.create_user(conn, ADMIN, ADMIN_PW, "superadmin")
            users.create_user(conn, VIEWER, VIEWER_PW, "viewer")
        # one failed run, so the status filter has something to tell apart
        synclog.log_run(ctx.dbs.telemetry, sync_type="job", status="error", started_at=clock.now() - 30,
                        records=0, plant_id=124, error="vendor timed out (test row)",
                        metadata={"job": "sync", "duration_ms": 30000})
        yield from serve(ctx)


def _open(browser, server, **kw) -> Watched:
    return Watched(browser.new_context(**kw), server.base_url)


@pytest.fixture
def admin(browser, server):
    w = _open(browser, server, viewport={"width": 1280, "height": 900})
    w.sign_in(ADMIN, ADMIN_PW)
    yield w
    w.context.close()


def _wait_charts(page, ids=("chart-energy", "chart-power", "chart-daily")) -> None:
    for cid in ids:
        page.wait_for_selector(f"#{cid}[data-state=ready]", timeout=20_000)


def _card_values(page) -> dict[str, float | None]:
    page.wait_for_function("document.querySelector('#card-total').dataset.value !== undefined")
    out = {}
    for testid in CARD_FIELDS:
        loc = page.get_by_test_id(testid)
        raw = loc.get_attribute("data-value")
        out[testid] = None if raw in (None, "") else float(raw)
        text = loc.inner_text().replace(",", "")
        if out[testid] is not None:  # what is shown is the same number, rounded for display
            assert abs(float(text) - out[testid]) <= 0.5 * 10 ** -CARD_DIGITS[testid] + 1e-9, (testid, text)
    return out


# ---------------------------------------------------------------------------------------------- tests


def test_sign_in_then_plants_list(browser, server):
    w = _open(browser, server, viewport={"width": 1280, "height": 900})
    try:
        w.goto("/")
        assert w.page.url.startswith(server.base_url + "/login"), "an anonymous visit goes to the sign-in form"
        w.shot("login")
        w.page.fill("#username", ADMIN)
        w.page.fill("#password", ADMIN_PW)
        with w.page.expect_navigation():
            w.page.click("button[type=submit]")
        assert w.page.url == server.base_url + "/"
        cookie = next(c for c in w.context.cookies() if c["name"] == "wattline_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"

        rows = w.page.get_by_test_id("plant-row")
        rows.first.wait_for()
        api = {p["id"]: p for p in w.api("/api/plants")["plants"]}
        assert rows.count() == len(api) == 3
        for i in range(rows.count()):
            row = rows.nth(i)
            p = api[int(row.get_attribute("data-plant-id"))]
            assert p["name"] in row.inner_text() and p["vendor"] in row.inner_text()
            assert row.get_by_test_id("health-dot").get_attribute("data-health") == p["health"]
            assert float(row.get_by_test_id("plant-daily").get_attribute("data-value")) == \
                p["summary"]["daily_energy_kwh"]
            assert float(row.get_by_test_id("plant-power").get_attribute("data-value")) == \
                p["summary"]["current_power_kw"]
            # last update shown in the plant's own zone, e.g. "24 Nov 2026, 10:15 CET"
            last = datetime.fromisoformat(p["summary"]["last_update_time"].replace("Z", "+00:00"))
            local = last.astimezone(ZoneInfo(p["timezone"]))
            assert local.strftime("%H:%M") in row.get_by_test_id("plant-last-update").inner_text()
        assert w.page.get_by_test_id("work-order-link").count() == 1
        w.shot("plants")
        w.assert_clean()
    finally:
        w.context.close()


def test_wrong_password_is_refused(browser, server):
    w = _open(browser, server)
    try:
        w.goto("/login")
        for user in (ADMIN, "nobody-here"):  # wrong password and unknown user: the same answer
            w.page.fill("#username", user)
            w.page.fill("#password", "wrong password entirely")
            with w.page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as resp:
                w.page.click("button[type=submit]")
            w.page.wait_for_load_state()
            assert resp.value.status == 401
            assert w.page.get_by_test_id("login-error").inner_text() == "Invalid username or password."
            assert not any(c["name"] == "wattline_session" for c in w.context.cookies())
        w.shot("login-refused")
        w.goto("/plants/123")
        assert "/login" in w.page.url, "still signed out"
        # the refused form post itself is a 401 document; nothing else may log an error
        w.assert_clean(allow=("status of 401",))
    finally:
        w.context.close()


def test_plant_page_cards_and_three_charts(admin):
    page = admin.page
    seen = {}  # the chart answers the page itself received (the windows move with the clock)
    page.on("response", lambda r: seen.__setitem__(r.url.split("/charts/")[1].split("?")[0], r)
            if "/charts/" in r.url else None)
    admin.goto(f"/plants/{PLANT}")
    _wait_charts(page)
    assert page.locator(".js-plotly-plot").count() == 3

    api = admin.api(f"/api/plants/{PLANT}")
    cards = _card_values(page)
    for testid, field in CARD_FIELDS.items():
        assert cards[testid] == api["summary"][field], (testid, cards[testid], api["summary"][field])

    energy, power, daily = (seen[k].json() for k in ("energy-15m", "power", "daily-energy"))
    drawn = page.evaluate("""() => Object.fromEntries(['chart-energy', 'chart-power', 'chart-daily'].map(id => {
        const d = document.getElementById(id);
        return [id, {traces: d.data.map(t => ({type: t.type, n: t.x.filter(v => v !== null).length,
                      x0: t.x.find(v => v !== null), y: t.y.filter(v => v !== null), name: t.name,
                      hover: t.hovertemplate})),
                     xtitle: d.layout.xaxis.title.text, ytitle: d.layout.yaxis.title.text,
                     points: d.querySelectorAll('.scatterlayer path.js-line, .barlayer .point').length}];
    }))""")
    e, p, d = drawn["chart-energy"], drawn["chart-power"], drawn["chart-daily"]
    assert e["traces"][0]["type"] == "scatter" and e["traces"][0]["n"] == len(energy["points"]) > 2000
    assert p["traces"][0]["type"] == "scatter" and p["traces"][0]["n"] == len(power["points"]) > 80
    assert all(t["type"] == "bar" for t in d["traces"])
    assert sum(t["n"] for t in d["traces"]) == len(daily["bars"]) == 31
    assert e["points"] >= 1 and p["points"] >= 1 and d["points"] >= 25, "the SVG holds the drawn lines and bars"
    # units in the axis titles and hover text; x in the plant's zone
    assert "MWh" in e["ytitle"] and "MWh" in e["traces"][0]["hover"]
    assert "kW" in p["ytitle"] and "kW" in p["traces"][0]["hover"]
    assert "kWh" in d["ytitle"] and "kWh" in d["traces"][0]["hover"]
    assert "Europe/Berlin" in e["xtitle"] and "Europe/Berlin" in p["xtitle"]
    first = datetime.fromisoformat(energy["points"][0]["ts"].replace("Z", "+00:00")).astimezone(ZoneInfo("Europe/Berlin"))
    assert e["traces"][0]["x0"] == first.strftime("%Y-%m-%d %H:%M:%S"), "x labels are plant-local time"
    assert e["traces"][0]["y"][0] == energy["points"][0]["total_energy_mwh"]

    # hovering the power line shows its value with the unit
    drag = page.locator("#chart-power .nsewdrag")
    drag.scroll_into_view_if_needed()
    box = drag.bounding_box()
    drag.hover(position={"x": box["width"] * 0.5, "y": box["height"] * 0.5}, force=True)
    drag.hover(position={"x": box["width"] * 0.55, "y": box["height"] * 0.6}, force=True)
    page.wait_for_selector("#chart-power .hoverlayer .hovertext", timeout=5000)
    assert "kW" in page.locator("#chart-power .hoverlayer .hovertext").first.text_content()

    assert page.get_by_test_id("backfill-button").is_visible(), "a superadmin sees the backfill button"
    admin.shot("plant")
    admin.assert_clean()


def test_estimated_and_gap_data_is_marked(admin):
    """Demo data is clean, so the API answers are altered on the way to the page."""
    page = admin.page

    served = {}

    def flag_bars(route):
        data = route.fetch().json()
        data["bars"][-2]["quality"] = ["estimated"]
        data["bars"][-3]["quality"] = ["low_confidence"]
        data["bars"][-4]["quality"] = ["gap"]
        served["bars"] = data["bars"]
        route.fulfill(json=data)

    def flag_summary(route):
        data = route.fetch().json()
        data["summary"]["quality"] = ["low_confidence"]
        route.fulfill(json=data)

    def drop_points(route):  # a two-hour hole in the power series
        data = route.fetch().json()
        del data["points"][40:48]
        route.fulfill(json=data)

    page.route(re.compile(r".*/charts/daily-energy.*"), flag_bars)
    page.route(re.compile(rf".*/api/plants/{PLANT}$"), flag_summary)
    page.route(re.compile(r".*/charts/power.*"), drop_points)
    admin.goto(f"/plants/{PLANT}")
    _wait_charts(page)
    names = page.evaluate("document.getElementById('chart-daily').data.map(t => [t.name, t.x.length])")
    by_name = dict(names)
    # today's bar has no data yet in the first minutes after the plant's local midnight
    measured = sum(1 for b in served["bars"] if not b["quality"])
    assert measured >= 27 and len(served["bars"]) == 31
    assert by_name.get("estimated") == 2 and by_name.get("estimated (gap)") == 1 and by_name["measured"] == measured
    legend = page.locator("#chart-daily .legend").text_content()
    assert "estimated" in legend and "measured" in legend
    assert page.get_by_test_id("chart-daily-badge").is_visible()
    assert page.get_by_test_id("quality-badge").is_visible()
    assert "low confidence" in page.get_by_test_id("quality-badge").inner_text()
    assert page.get_by_test_id("chart-power-badge").is_visible()
    assert page.get_by_test_id("chart-power").get_attribute("data-gaps") == "1"
    admin.shot("plant-estimated")
    admin.assert_clean()


def test_work_order_sums_its_plants(admin):
    page = admin.page
    admin.goto(f"/work-orders/{WORK_ORDER}")
    _wait_charts(page, ("chart-daily",))
    members = page.get_by_test_id("member")
    assert members.count() == 3
    summed = _card_values(page)
    api = admin.api(f"/api/work-orders/{WORK_ORDER}?days=31")
    for testid, field in CARD_FIELDS.items():
        shown = [float(members.nth(i).locator(f"dd[data-field={field}]").get_attribute("data-value") or 0)
                 for i in range(3)]
        assert summed[testid] == api["summary"][field]
        assert abs(summed[testid] - sum(shown)) <= 0.001, (testid, summed[testid], shown)
    bars = page.evaluate("document.getElementById('chart-daily').data.reduce((n, t) => n + t.x.length, 0)")
    assert bars == len(api["dailyBars"]) == 31
    admin.shot("work-order")
    admin.assert_clean()


def test_sync_logs_list_and_filter(admin):
    page = admin.page
    admin.goto("/sync-logs")
    page.get_by_test_id("sync-row").first.wait_for()
    assert page.get_by_test_id("sync-row").count() > 5
    assert page.get_by_test_id("sync-table").locator("th").all_inner_texts()[3].lower() == "status"
    admin.shot("sync-logs")

    page.get_by_test_id("filter-status").select_option("error")
    with page.expect_navigation():
        page.get_by_test_id("filter-apply").click()
    assert "status=error" in page.url
    page.get_by_test_id("sync-row").first.wait_for()
    statuses = page.get_by_test_id("sync-row").evaluate_all("rs => rs.map(r => r.dataset.status)")
    assert statuses == ["error"]
    assert "vendor timed out" in page.get_by_test_id("sync-row").first.inner_text()
    admin.shot("sync-logs-errors")

    admin.goto("/sync-logs?status=success&plant_id=123")
    page.get_by_test_id("sync-row").first.wait_for()
    rows = page.get_by_test_id("sync-row").evaluate_all("rs => rs.map(r => [r.dataset.status, r.dataset.plantId])")
    assert rows and all(s == "success" and pid == "123" for s, pid in rows)
    assert page.get_by_test_id("filter-plant").input_value() == "123"
    admin.assert_clean()


def test_phone_width_has_no_horizontal_overflow(browser, server):
    w = _open(browser, server, viewport={"width": 390, "height": 844}, device_scale_factor=2,
              is_mobile=True, has_touch=True)
    try:
        w.sign_in(ADMIN, ADMIN_PW)
        for path, name, ready in (("/", "plants", "[data-testid=plant-row]"),
                                  (f"/plants/{PLANT}", "plant", "#chart-daily[data-state=ready]"),
                                  (f"/work-orders/{WORK_ORDER}", "work-order", "#chart-daily[data-state=ready]"),
                                  ("/sync-logs", "sync-logs", "[data-testid=sync-row]"),
                                  ("/jobs", "jobs", "[data-testid=status]")):
            w.goto(path)
            w.page.wait_for_selector(ready, timeout=20_000)
            if name == "plant":
                _wait_charts(w.page)
            sizes = w.page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            assert sizes[0] <= sizes[1], (path, sizes)
            w.shot(f"{name}-phone")
        w.assert_clean()
    finally:
        w.context.close()


def test_viewer_has_no_backfill_button(browser, server):
    w = _open(browser, server)
    try:
        w.sign_in(VIEWER, VIEWER_PW, path=f"/plants/{PLANT}")
        assert w.page.url.endswith(f"/plants/{PLANT}"), "sign-in returns to the page asked for"
        _wait_charts(w.page)
        assert w.page.get_by_test_id("backfill-button").count() == 0
        w.assert_clean()
    finally:
        w.context.close()


def test_backfill_button_shows_job_progress(admin):
    page = admin.page
    admin.goto(f"/plants/{PLANT}")
    _wait_charts(page)
    page.get_by_test_id("backfill-button").click()
    status = page.get_by_test_id("backfill-status")
    page.wait_for_selector("[data-testid=backfill-status][data-state=succeeded], "
                           "[data-testid=backfill-status][data-state=failed]", timeout=30_000)
    assert status.get_attribute("data-state") == "succeeded", status.inner_text()
    assert re.search(r"Done: [\d,]+ records", status.inner_text())
    job_id = status.get_attribute("data-job-id")
    _wait_charts(page)
    admin.shot("plant-backfill")

    # the jobs page lists it, as the API does, newest first
    admin.goto("/jobs")
    page.get_by_test_id("job-row").first.wait_for()
    rows = page.get_by_test_id("job-row").evaluate_all(
        "rs => rs.map(r => [r.dataset.jobId, r.dataset.kind, r.dataset.status, r.dataset.plantId])")
    api = page.request.get(f"{admin.base}/api/jobs?limit=100").json()["jobs"]
    assert rows == [[j["id"], j["kind"], j["status"], str(j["params"].get("plant_id", ""))] for j in api]
    assert rows[0] == [job_id, "backfill", "succeeded", str(PLANT)]
    assert re.search(r"Done: [\d,]+ records", page.get_by_test_id("job-row").first.inner_text())
    admin.shot("jobs")
    admin.assert_clean()


def test_logout_ends_the_session(admin):
    page = admin.page
    admin.goto("/")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    assert "/login" in page.url
    assert not any(c["name"] == "wattline_session" for c in admin.context.cookies())
    admin.goto("/sync-logs")
    assert "/login" in page.url
    admin.assert_clean()


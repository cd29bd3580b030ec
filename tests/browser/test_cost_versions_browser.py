"""The cost-version manager in headless chromium: an admin adds a version through the
form (its effective time entered in the campus zone), the table and the API agree; a
bad rate is refused with the API's message and stores nothing; a viewer sees the list
without the form."""

from __future__ import annotations


import pytest

from browserkit import Watched, needs_chromium, serve

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api")

ADMIN, ADMIN_PW = "cost-admin", "cost admin horse battery"
VIEWER, VIEWER_PW = "cost-viewer", "cost viewer horse battery"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from wattline import provisioning
    from wattline.config import Settings
    from wattline.context import open_context
    from wattline.security import users

    needs_chromium()
    ctx = open_context(Settings(data_dir=tmp_path_factory.mktemp("cost-ui"), main_url=None, telemetry_url=None))
    with ctx.dbs.main.begin() as conn:
        provisioning.add_classroom(conn, "CR-101", "Asia/Kolkata")
        users.create_user(conn, ADMIN, ADMIN_PW, "admin")
        users.create_user(conn, VIEWER, VIEWER_PW, "viewer")
    yield from serve(ctx)


def _signed_in(browser, server, user, password) -> Watched:
    w = Watched(browser.new_context(viewport={"width": 1280, "height": 900}), server.base_url)
    w.sign_in(user, password, path="/cost-versions")
    return w


def test_an_admin_adds_a_version_and_the_table_shows_what_the_api_stored(browser, server):
    w = _signed_in(browser, server, ADMIN, ADMIN_PW)
    try:
        page = w.page
        assert page.url.endswith("/cost-versions")
        page.get_by_test_id("status").filter(has_text="No cost version").wait_for()
        page.fill("[data-testid=rate]", "8.50")
        page.fill("[data-testid=currency]", "inr")
        page.fill("[data-testid=effective]", "2025-11-05T12:00")
        page.fill("[data-testid=timezone]", "Asia/Kolkata")
        page.fill("[data-testid=classroom]", "CR-101")
        page.fill("[data-testid=notes]", "tariff 2025-26")
        page.click("[data-testid=add]")
        page.get_by_test_id("add-status").filter(has_text="Added").wait_for()
        rows = page.get_by_test_id("version-row")
        rows.first.wait_for()
        (stored,) = w.api("/api/power-analytics/cost-versions")["versions"]
        # 12:00 in Kolkata (+05:30) is 06:30 UTC
        assert stored["effective_from"] == "2025-11-05T06:30:00Z"
        assert (stored["cost_per_kwh"], stored["currency"], stored["scope"], stored["scope_name"]) == \
            ("8.50", "INR", "group", "CR-101")
        text = rows.first.inner_text()
        for part in ("2025-11-05 06:30:00", "8.50", "INR", "CR-101", "tariff 2025-26", ADMIN):
            assert part in text, (part, text)
        # the answer names the re-pricing job, and the page follows it to its end
        page.get_by_test_id("job-status").filter(has_text="Job succeeded").wait_for(timeout=30_000)
        assert "entries_covered" in page.get_by_test_id("job-status").inner_text()
        w.shot("cost-versions")

        page.fill("[data-testid=rate]", "-1")
        page.click("[data-testid=add]")
        page.get_by_test_id("add-status").filter(has_text="Not added").wait_for()
        assert page.get_by_test_id("add-status").get_attribute("class").split().count("error") == 1
        assert len(w.api("/api/power-analytics/cost-versions")["versions"]) == 1  # nothing stored
        assert rows.count() == 1
        w.assert_clean(allow=("400",))  # the refused POST is logged by the browser
    finally:
        w.context.close()


def test_a_viewer_sees_the_versions_without_the_form(browser, server):
    w = _signed_in(browser, server, VIEWER, VIEWER_PW)
    try:
        w.page.wait_for_function("document.querySelector('[data-testid=status]').textContent !== 'Loading…'")
        assert "Could not" not in w.page.get_by_test_id("status").inner_text()
        assert w.page.get_by_test_id("add-version").count() == 0
        assert w.page.get_by_test_id("versions-table").is_visible()
        w.assert_clean()
    finally:
        w.context.close()

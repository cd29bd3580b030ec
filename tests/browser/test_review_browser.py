"""The review page in headless chromium (Debian's), driven by Playwright for Python:
the items reconciliation opened, filtered, one resolved with a note; an admin's
recalculation started from the form and its job followed to the end. The page's
figures are compared with the API's. Fails on any console or page error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from browserkit import Watched, needs_chromium, serve  # noqa: E402
from test_reconcile import DAY, _campus, _feed  # noqa: E402

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api")

ADMIN, ADMIN_PW = "admin", "correct horse battery staple"
VIEWER, VIEWER_PW = "viewer", "viewer horse battery staple"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from wattline.config import Settings
    from wattline.context import open_context
    from wattline.jobs import reconcile as J
    from wattline.security import users

    needs_chromium()
    ctx = open_context(Settings(data_dir=tmp_path_factory.mktemp("review"), main_url=None, telemetry_url=None))
    org, _ = _campus(ctx)
    _feed(ctx, org)
    with ctx.dbs.main.begin() as conn:
        users.create_user(conn, ADMIN, ADMIN_PW, "superadmin")
        users.create_user(conn, VIEWER, VIEWER_PW, "viewer")
    J.reconcile(ctx, day=DAY, organization="campus")
    yield from serve(ctx)


def _page(browser, server, user=ADMIN, pw=ADMIN_PW) -> Watched:
    w = Watched(browser.new_context(viewport={"width": 1280, "height": 900}), server.base_url)
    w.sign_in(user, pw, "/review")
    w.page.wait_for_selector("[data-testid=status]:has-text('item')")
    return w


def test_items_are_listed_filtered_and_resolved(browser, server):
    w = _page(browser, server)
    api = w.api("/api/power-analytics/review-items?status=open")["items"]
    rows = w.page.locator("#review-body tr")
    assert rows.count() == len(api) == 4
    assert sorted(rows.nth(i).get_attribute("data-kind") for i in range(rows.count())) \
        == ["energy_while_off", "gap", "missing_heartbeat", "unknown_device"]
    w.page.select_option("#f-kind", "gap")
    w.page.click("#review-filters button[type=submit]")
    w.page.wait_for_selector("[data-testid=status]:has-text('1 item')")
    gap = next(i for i in api if i["kind"] == "gap")
    row = w.page.get_by_test_id(f"item-{gap['id']}")
    assert "ESP01/light_1" in row.inner_text() and "CR-101" in row.inner_text()
    w.page.once("dialog", lambda d: d.accept("a power cut in the block"))
    w.page.get_by_test_id(f"resolve-{gap['id']}").click()
    w.page.wait_for_selector("[data-testid=status]:has-text('0 items')")
    w.page.select_option("#f-status", "resolved")
    w.page.click("#review-filters button[type=submit]")
    w.page.wait_for_selector(f"[data-testid=item-{gap['id']}][data-status=resolved]")
    assert "a power cut in the block" in w.page.get_by_test_id(f"item-{gap['id']}").inner_text()
    (item,) = [i for i in w.api("/api/power-analytics/review-items?kind=gap")["items"]]
    assert (item["status"], item["resolved_by"], item["resolution"]) == ("resolved", ADMIN, "a power cut in the block")
    w.shot("review-resolved")
    w.assert_clean()


def test_an_admin_recalculates_and_follows_the_job(browser, server):
    w = _page(browser, server)
    w.page.fill("#r-classroom", "CR-101")
    w.page.fill("#r-start", DAY.isoformat())
    w.page.fill("#r-end", "2025-11-06")
    w.page.get_by_test_id("recalc-submit").click()
    w.page.wait_for_selector("[data-testid=recalc-status][data-state=succeeded]", timeout=60_000)
    text = w.page.get_by_test_id("recalc-status").inner_text()
    jobs = [j for j in w.api("/api/jobs")["jobs"] if j["kind"] == "recalculate"]
    r = jobs[0]["result"]
    assert jobs[0]["status"] == "succeeded" and jobs[0]["params"]["classroom"] == "CR-101"
    assert f"{r['devices_checked']} device-days checked, {r['fixed']} fixed, {r['items_opened']} review items opened" \
        in text and "day 1 of 1" in text
    assert r["items_opened"] == 0  # the night was reconciled already: nothing new
    w.shot("review-recalculated")
    w.assert_clean()


def test_a_viewer_sees_the_list_but_no_recalculate_form(browser, server):
    w = _page(browser, server, VIEWER, VIEWER_PW)
    assert w.page.locator("#recalc-form").count() == 0
    assert w.page.locator("#review-body button").count() == 0
    w.assert_clean()



"""Cost on the plant and work-order pages, in headless chromium (Debian's).

The same demo server as ``test_dashboard_browser`` (work order 456, three plants, 40 days
backfilled from the emulated clouds), built for this module. Without a cost version the
pages show no cost at all (no card, nothing in the bars' hover); once a version is added
(priced on read: the next load shows it) the cost cards show the API's figures and every
daily bar's hover carries its cost.
"""

from __future__ import annotations

import pytest

from test_dashboard_browser import _wait_charts, admin, server  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser

PLANT, WORK_ORDER = 123, 456
PERIODS = ("daily", "monthly", "yearly", "total")


def _cost_cards(page) -> dict[str, float | None]:
    out = {}
    for p in PERIODS:
        raw = page.get_by_test_id(f"cost-{p}").get_attribute("data-value")
        out[p] = None if raw in (None, "") else float(raw)
    return out


def _hover_text(page, chart: str, index: int) -> str:
    """Hover the ``index``-th bar of the first trace with Plotly's own hover; its label's text."""
    page.evaluate("([id, i]) => Plotly.Fx.hover(document.getElementById(id), [{curveNumber: 0, pointNumber: i}])",
                  [chart, index])
    page.wait_for_selector(f"#{chart} .hoverlayer .hovertext", state="attached", timeout=5_000)
    return page.locator(f"#{chart} .hoverlayer .hovertext").first.text_content()


def test_cost_cards_and_bar_hover_only_when_priced(admin, server):  # noqa: F811 - fixtures
    from wattline import clock
    from wattline.store import cost_versions_repo

    page = admin.page
    admin.goto(f"/plants/{PLANT}")
    _wait_charts(page)
    page.wait_for_function("document.querySelector('[data-testid=cost-cards]').dataset.priced !== undefined")
    assert not page.get_by_test_id("cost-cards").is_visible()
    daily = page.locator("#chart-daily")
    assert daily.get_attribute("data-priced-bars") == "0"
    assert "EUR" not in _hover_text(page, "chart-daily", 0)

    ctx = server.server.config.app.state.ctx
    with ctx.dbs.main.begin() as conn:  # 0.25 EUR/kWh for every plant over the whole history
        cost_versions_repo.add(conn, rate_micro_per_kwh=250_000, effective_from=clock.now_s() - 60 * 86400,
                               currency="EUR")

    admin.goto(f"/plants/{PLANT}")
    _wait_charts(page)
    page.get_by_test_id("cost-cards").wait_for(state="visible")
    summary = admin.api(f"/api/plants/{PLANT}")["summary"]
    assert summary["monthly_cost"] is not None and summary["currency"] == "EUR"
    assert _cost_cards(page) == {p: summary[f"{p}_cost"] for p in PERIODS}
    assert "EUR" in page.get_by_test_id("cost-monthly").locator("xpath=..").inner_text()
    bars = admin.api(f"/api/telemetry/plant/{PLANT}/charts/daily-energy?days=31")["bars"]
    assert daily.get_attribute("data-priced-bars") == str(sum(b["cost"] is not None for b in bars)) == "31"
    text = _hover_text(page, "chart-daily", 0)
    assert "EUR" in text, text
    admin.shot("plant-cost")

    admin.goto(f"/work-orders/{WORK_ORDER}")
    page.wait_for_selector("#chart-daily[data-state=ready]", timeout=20_000)
    page.get_by_test_id("cost-cards").wait_for(state="visible")
    wo = admin.api(f"/api/work-orders/{WORK_ORDER}?days=31")
    assert _cost_cards(page) == {p: wo["summary"][f"{p}_cost"] for p in PERIODS}
    members = page.get_by_test_id("member")
    assert members.count() == 3
    assert all("EUR" in members.nth(i).locator("[data-field=monthly_cost]").inner_text() for i in range(3))
    assert "EUR" in _hover_text(page, "chart-daily", 0)
    admin.shot("work-order-cost")
    admin.assert_clean()

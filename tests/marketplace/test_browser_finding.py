"""What only a browser shows of finding an offer: the table beside the cards (wide screens
only), and a phone's results brought into view after a filter changes them."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.marketplace import test_browser as shared
from tests.marketplace.test_browser import ARTIFACTS, cards

browser = shared.browser  # the same Playwright fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("width", [390, 1280])
def test_the_table_view_is_for_wide_screens_and_phones_keep_cards(
    world, live_server, browser, width
):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(live_server.url + "/?kind=gpu")
    page.get_by_role("link", name="Table").click()
    page.wait_for_url("**/?kind=gpu&view=table")
    table, first_card = page.locator("table.offer-table"), cards(page).first
    if width >= 700:
        expect(table).to_be_visible()
        expect(first_card).to_be_hidden()
        table.get_by_role("link", name="Per VRAM-GB·h").click()
        page.wait_for_url("**/?kind=gpu&view=table&sort=vram_price")
        expect(page.locator("#sort-select select")).to_have_value("vram_price")
    else:
        expect(table).to_be_hidden()
        expect(first_card).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.screenshot(path=ARTIFACTS / f"marketplace-table-{width}.png", full_page=True)


def test_a_filter_change_keeps_the_table_view(world, live_server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(live_server.url + "/?view=table")
    page.get_by_label("GPU Cloud").check()
    page.wait_for_url("**/?provider=gpucloud&view=table")
    expect(page.locator("table.offer-table tbody tr")).to_have_count(3)


def test_on_a_phone_a_filter_change_brings_the_results_into_view(world, live_server, browser):
    page = browser.new_page(viewport={"width": 390, "height": 700})
    page.goto(live_server.url + "/")
    page.get_by_text("Filters", exact=True).click()
    assert page.locator("#results").bounding_box()["y"] > 350  # under the open panel
    page.get_by_label("GPU Cloud").check()
    page.wait_for_url("**/?provider=gpucloud")
    summary = page.locator("#results .summary")
    expect(summary).to_be_in_viewport()
    page.screenshot(path=ARTIFACTS / "marketplace-390-after-filter.png")

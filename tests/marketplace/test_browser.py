"""What only a browser shows: HTMX swaps, the address bar, Back, the debounce, the layout.

Headless Debian chromium through Playwright, against pytest-django's live server. Screenshots
go to test-artifacts/ (gitignored). GPUBROKER_DOCS_SCREENSHOT=1 also refreshes the README's
docs/marketplace.png from the recorded payloads.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.marketplace.conftest import llm, publish, usd

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def browser():
    """Tests list their data fixtures before this one: once Playwright's event loop runs in
    this thread, Django would refuse the ORM (and keep a connection it cannot close later)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(10_000)
    return page


def cards(page: Page):
    return page.locator("#results article h2")


def test_choosing_a_provider_and_a_region_swaps_the_grid_and_back_restores_it(
    world, live_server, page
):
    page.goto(live_server.url + "/")
    expect(cards(page)).to_have_count(9)
    page.evaluate("window.notReloaded = true")

    page.get_by_label("GPU Cloud").check()
    page.wait_for_url("**/?provider=gpucloud")
    expect(cards(page)).to_have_count(3)

    page.locator("details[data-facet=region] summary").click()
    page.get_by_label("Norway").check()
    page.wait_for_url("**/?provider=gpucloud&region=Norway")
    expect(cards(page)).to_have_text(["1× RTX 4090"])
    assert page.evaluate("window.notReloaded") is True  # swapped in place, no page load

    page.go_back()
    page.wait_for_url("**/?provider=gpucloud")
    expect(cards(page)).to_have_count(3)
    expect(page.get_by_label("Norway")).not_to_be_checked()
    expect(page.get_by_label("GPU Cloud")).to_be_checked()

    page.go_back()
    page.wait_for_url(live_server.url + "/")
    expect(cards(page)).to_have_count(9)
    expect(page.get_by_label("GPU Cloud")).not_to_be_checked()
    assert page.evaluate("window.notReloaded") is True


def test_counts_beside_the_options_follow_the_filters(world, live_server, page):
    page.goto(live_server.url + "/")
    hf = page.locator("label", has=page.get_by_label("Hugging Face")).locator(".n")
    expect(hf).to_have_text("2")
    page.get_by_label("GPU compute").check()
    page.wait_for_url("**/?kind=gpu")
    expect(hf).to_have_text("0")
    expect(page.locator("#price-unit")).to_have_text("(USD per GPU-hour)")


def test_typing_a_search_shows_results_after_the_debounce(world, live_server, page):
    page.goto(live_server.url + "/")
    searches = []
    page.on("request", lambda r: searches.append(r.url) if "q=" in r.url else None)
    page.get_by_placeholder("llama, H100…").press_sequentially("qwen", delay=60)
    page.wait_for_url("**/?q=qwen")
    expect(cards(page)).to_have_text(["Qwen/Qwen3-32B"])
    page.wait_for_timeout(600)
    assert len(searches) == 1, searches  # one request for four keystrokes


@pytest.fixture
def thirty_offers(registry):
    offers = (llm(f"m/{i:02}", usd_per_1m_input=usd(1 + i)) for i in range(30))
    publish(registry["deepinfra"], *offers)


def test_the_pager_keeps_the_filters(thirty_offers, live_server, page):
    page.goto(live_server.url + "/?provider=deepinfra")
    page.get_by_role("link", name="Next →").click()
    page.wait_for_url("**/?provider=deepinfra&page=2")
    expect(cards(page)).to_have_count(6)


@pytest.mark.parametrize("width", [360, 390, 1280])
def test_it_reads_at_phone_and_desktop_widths(recorded_world, live_server, browser, width):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(live_server.url + "/")
    expect(cards(page).first).to_be_visible()
    # Nothing wider than the screen: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"marketplace-{width}-full.png", full_page=True)
    page.screenshot(path=ARTIFACTS / f"marketplace-{width}.png")
    if width == 1280 and os.environ.get("GPUBROKER_DOCS_SCREENSHOT"):
        shutil.copy(ARTIFACTS / "marketplace-1280.png", ROOT / "docs" / "marketplace.png")

    cards(page).first.locator("a").click()
    expect(page.get_by_role("heading", name="Every field")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.screenshot(path=ARTIFACTS / f"offer-{width}.png", full_page=True)


def test_on_a_phone_the_filters_fold_so_the_first_offers_are_on_the_first_screen(
    world, live_server, browser
):
    page = browser.new_page(viewport={"width": 390, "height": 900})
    page.goto(live_server.url + "/")
    assert cards(page).first.bounding_box()["y"] < 900
    expect(page.get_by_label("GPU Cloud")).to_be_hidden()

    page.get_by_text("Filters", exact=True).click()
    page.get_by_label("GPU Cloud").check()
    page.wait_for_url("**/?provider=gpucloud")
    expect(cards(page)).to_have_count(3)
    expect(page.locator("#filter-panel > summary")).to_have_text("Filters (1 active)")
    expect(page.get_by_label("GPU Cloud")).to_be_visible()  # still open to pick more
    page.screenshot(path=ARTIFACTS / "marketplace-390-filters-open.png")


def test_on_a_desktop_the_filters_are_open_with_no_fold(world, live_server, page):
    page.goto(live_server.url + "/?provider=gpucloud")
    expect(page.get_by_label("GPU Cloud")).to_be_visible()
    expect(page.locator("#filter-panel > summary")).to_be_hidden()
    assert cards(page).first.bounding_box()["x"] > 250  # beside the filters, not under them


def test_without_javascript_the_filters_are_a_plain_form(world, live_server, browser):
    context = browser.new_context(viewport={"width": 390, "height": 900}, java_script_enabled=False)
    page = context.new_page()
    page.goto(live_server.url + "/")
    page.get_by_label("GPU Cloud").check()  # rendered open: nothing can fold it
    page.get_by_role("button", name="Show offers").click()
    page.wait_for_url("**/?*provider=gpucloud*")  # a plain GET sends every field, empty or not
    expect(cards(page)).to_have_count(3)
    expect(page.locator("#filter-panel > summary")).to_have_text("Filters (1 active)")
    context.close()

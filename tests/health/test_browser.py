from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client
from playwright.sync_api import expect, sync_playwright

from resilience import errors
from tests.conftest import PATH, get

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def staff_cookie(django_user_model) -> dict:
    browser = Client()
    browser.force_login(django_user_model.objects.create_user("ops", is_staff=True))
    return {
        "name": django_settings.SESSION_COOKIE_NAME,
        "value": browser.cookies[django_settings.SESSION_COOKIE_NAME].value,
    }


@pytest.mark.browser
def test_reset_on_an_open_breaker_shows_closed_without_a_reload(
    live_server, registry, groq_server, groq_client, staff_cookie, monkeypatch
):
    groq_server.expect_request(PATH).respond_with_json({"error": "down"}, status=500)
    for _ in range(5):
        with pytest.raises(errors.Transient):
            get(groq_client)
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the ORM runs beside Playwright
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        context.add_cookies([{**staff_cookie, "url": live_server.url}])
        page = context.new_page()
        page.goto(f"{live_server.url}/health/")
        card = page.locator("#provider-groq")
        expect(card.locator("[data-breaker]")).to_have_text("OPEN")
        page.evaluate("window.notReloaded = true")
        card.get_by_role("button", name="Reset breaker").click()
        expect(page.locator("#provider-groq [data-breaker]")).to_have_text("CLOSED")
        assert page.evaluate("window.notReloaded") is True
        assert page.url == f"{live_server.url}/health/"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "health-dashboard.png", full_page=True)
        page.set_viewport_size({"width": 360, "height": 800})
        assert page.evaluate("document.documentElement.scrollWidth") <= 360  # no sideways scroll
        page.screenshot(path=ARTIFACTS / "health-dashboard-phone.png", full_page=True)
        chromium.close()


@pytest.mark.browser
def test_the_summary_line_follows_a_button_without_a_reload(
    live_server, registry, groq_server, settings, staff_cookie, monkeypatch
):
    settings.DEEPINFRA_BASE_URL = settings.GROQ_BASE_URL
    groq_server.expect_request("/v1/openai/models").respond_with_json({"data": []})
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = chromium.new_context()
        context.add_cookies([{**staff_cookie, "url": live_server.url}])
        page = context.new_page()
        page.goto(f"{live_server.url}/health/")
        summary = page.locator("#health-summary")
        expect(summary).to_contain_text("0 healthy")
        page.evaluate("window.notReloaded = true")
        page.locator("#provider-deepinfra").get_by_role("button", name="Run health check").click()
        expect(page.locator("#provider-deepinfra [data-status]")).to_have_text("HEALTHY")
        expect(summary).to_contain_text("1 healthy", timeout=2000)  # before the 5 s poll
        assert page.evaluate("window.notReloaded") is True
        chromium.close()

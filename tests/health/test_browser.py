from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.test import Client
from playwright.sync_api import expect, sync_playwright

from health.models import HealthCheck
from providers.models import PollRun
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
    live_server, registry, groq_server, settings, staff_cookie, monkeypatch, eager_tasks
):
    """The check runs at once here (no worker): the card the button answers has it."""
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


def _launch(p):
    return p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)


@pytest.mark.browser
@pytest.mark.parametrize("width", [390, 1280])
def test_after_the_session_is_deleted_the_refresh_shows_the_login_page_whole(
    live_server, registry, staff_cookie, monkeypatch, width
):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        chromium = _launch(p)
        context = chromium.new_context(viewport={"width": width, "height": 900})
        context.add_cookies([{**staff_cookie, "url": live_server.url}])
        page = context.new_page()
        page.goto(f"{live_server.url}/health/")
        expect(page.locator("#provider-groq")).to_be_visible()
        Session.objects.all().delete()  # the login expired, or ops logged out elsewhere
        page.wait_for_url("**/admin/login/?next=%2Fhealth%2F", timeout=12_000)  # next refresh
        expect(page.locator("#id_username")).to_have_count(1)  # one login form, whole page
        expect(page.locator(".health-card")).to_have_count(0)
        page.screenshot(path=_artifact(f"health-session-ended-{width}.png"))
        chromium.close()


@pytest.mark.browser
@pytest.mark.parametrize("width", [390, 1280])
def test_the_public_status_page_reads_for_an_anonymous_visitor(
    live_server, registry, monkeypatch, width
):
    HealthCheck.objects.create(provider=registry["groq"], ok=False, status_class="timeout")
    HealthCheck.objects.create(provider=registry["groq"], ok=True, status_class="ok")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        chromium = _launch(p)
        page = chromium.new_page(viewport={"width": width, "height": 900})
        failed = []
        page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
        page.goto(f"{live_server.url}/")
        page.get_by_role("link", name="Provider health").first.click()
        page.wait_for_url(f"{live_server.url}/status/")
        page.wait_for_load_state("networkidle")
        assert failed == []  # the favicon included
        chart = page.locator("#provider-groq svg.health-chart").bounding_box()
        assert chart["width"] >= 300  # legible at 390 px too (it was 144 × 24)
        expect(page.locator("#provider-groq svg.health-chart title")).to_have_count(24)
        expect(page.locator("#provider-groq svg.health-chart .mark")).to_have_count(1)
        expect(page.locator(".health-card")).to_have_count(len(registry))
        expect(page.get_by_role("button")).to_have_count(0)  # no ops buttons for visitors
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=_artifact(f"status-public-{width}.png"), full_page=True)
        chromium.close()


@pytest.mark.browser
def test_a_providers_health_page_fits_a_phone(live_server, registry, staff_cookie, monkeypatch):
    groq = registry["groq"]
    long_error = "connection failed (ConnectError: [Errno -2] Name or service not known) " * 3
    for _ in range(3):
        PollRun.objects.create(
            provider=groq, outcome="failed", error_class="Transient", error_message=long_error
        )
        HealthCheck.objects.create(
            provider=groq, ok=False, status_class="connection", error=long_error
        )
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        chromium = _launch(p)
        context = chromium.new_context(viewport={"width": 390, "height": 800})
        context.add_cookies([{**staff_cookie, "url": live_server.url}])
        page = context.new_page()
        page.goto(f"{live_server.url}/health/groq/")
        expect(page.get_by_role("heading", name="Recent polls")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=_artifact("health-detail-390.png"), full_page=True)
        chromium.close()


def _artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name

"""/status/: what anyone may know about each provider; buttons and error details stay staff's."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from health.models import HealthCheck
from providers.models import PollRun, Provider
from resilience import errors
from tests.conftest import KEY, PATH, get

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def failing_groq(registry, groq_server, groq_client):
    groq_server.expect_request(PATH).respond_with_json({"error": f"down {KEY}"}, status=500)
    for _ in range(5):
        with pytest.raises(errors.Transient):
            get(groq_client)
    groq = registry["groq"]
    HealthCheck.objects.create(
        provider=groq, ok=False, status_class="server_error", error="HTTP 500 from db-7.internal"
    )
    PollRun.objects.create(
        provider=groq, outcome="failed", error_class="Transient", error_message="db-7.internal"
    )
    Provider.objects.filter(slug="deepinfra").update(last_success_at=timezone.now())
    return registry


def test_anyone_sees_status_last_poll_success_rate_and_the_24_hour_bar(failing_groq, client):
    page = client.get("/status/").content.decode()
    assert "<h1>Provider status</h1>" in page
    assert page.count('class="card health-card') == len(failing_groq)
    assert '<span class="badge" data-status>UNAVAILABLE</span>' in page
    assert "0% of 5 calls" in page
    assert "Last successful poll" in page and "just now</time>" in page
    assert 'aria-label="Health checks per hour over the last 24 hours, UTC"' in page


def test_error_details_and_buttons_are_for_staff_only(failing_groq, staff_client):
    client = Client()  # staff_client is the `client` fixture, logged in
    public = client.get("/status/").content.decode()
    for secret in ("db-7.internal", "Reset breaker", "Invalidate cache", "data-breaker", KEY):
        assert secret not in public
    detail = client.get("/status/groq/").content.decode()
    assert "Recent polls" in detail and "db-7.internal" not in detail
    ops = staff_client.get("/status/").content.decode()
    assert "db-7.internal" in ops and "Reset breaker" in ops


def test_the_public_cards_refresh_from_the_public_page(failing_groq, client):
    page = client.get("/status/").content.decode()
    assert 'hx-get="/status/groq/" hx-trigger="every 30s"' in page
    response = client.get("/status/groq/", **HTMX)
    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith('<li class="card health-card')


def test_provider_health_links_anyone_to_the_public_page(failing_groq, staff_client):
    assert '<a href="/status/">Provider health</a>' in Client().get("/").content.decode()
    assert '<a href="/health/">Provider health</a>' in staff_client.get("/").content.decode()

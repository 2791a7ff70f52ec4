from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from gpubroker.celery import app
from health.models import HealthCheck
from providers.models import PollRun
from resilience import breaker, errors
from tests.conftest import KEY, MODELS, PATH, get

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def open_breaker(registry, groq_server, groq_client):
    groq_server.expect_request(PATH).respond_with_json({"error": f"down {KEY}"}, status=500)
    for _ in range(5):
        with pytest.raises(errors.Transient):
            get(groq_client)
    return registry


def breaker_state() -> str:
    return breaker.current("groq")["state"]


def test_the_dashboard_shows_a_card_per_provider(open_breaker, staff_client):
    HealthCheck.objects.create(
        provider=open_breaker["groq"], ok=False, status_class="server_error", error="HTTP 500"
    )
    page = staff_client.get("/health/").content.decode()
    assert page.count('class="card health-card') == len(open_breaker)
    assert 'id="provider-groq"' in page and 'hx-trigger="every 5s"' in page
    assert (
        "<strong data-breaker>OPEN</strong> · 5 failures in a row · tripped 1× · 0 successes"
        in page
    )
    assert "health check: HTTP 500" in page
    assert "<svg" in page and "1 failed" in page
    assert "Reset breaker" in page
    assert KEY not in page


def test_the_dashboard_is_for_staff(open_breaker, client):
    assert client.get("/health/").status_code == 302


def test_a_card_refresh_is_the_cards_partial(open_breaker, staff_client):
    response = staff_client.get("/health/groq/", **HTMX)
    body = response.content.decode()
    assert body.lstrip().startswith('<li class="card health-card status-unavailable"')
    assert "<html" not in body
    assert "HX-Request" in response["Vary"]


def test_the_summary_line_refreshes_as_its_own_partial(open_breaker, staff_client):
    response = staff_client.get("/health/", **HTMX)
    body = response.content.decode()
    assert body.lstrip().startswith('<p class="summary" id="health-summary"')
    assert "<strong data-overall>unavailable</strong>" in body and "1 unavailable" in body
    assert "<html" not in body and "health-card" not in body
    assert "HX-Request" in response["Vary"]


def test_the_detail_page_lists_polls_and_checks(open_breaker, staff_client):
    groq = open_breaker["groq"]
    PollRun.objects.create(
        provider=groq, outcome="failed", error_class="Transient", error_message="HTTP 502"
    )
    HealthCheck.objects.create(provider=groq, ok=True, status_class="ok", latency_ms=81.5)
    page = staff_client.get("/health/groq/").content.decode()
    assert "<html" in page and "Recent polls" in page and "Transient: HTTP 502" in page
    assert "82 ms" in page
    assert staff_client.get("/health/nope/").status_code == 404


def test_reset_answers_with_the_new_card(open_breaker, staff_client):
    response = staff_client.post("/health/groq/reset-breaker", **HTMX)
    assert "<strong data-breaker>CLOSED</strong>" in response.content.decode()
    assert breaker_state() == "CLOSED"
    assert "health-changed" in response["HX-Trigger"]  # the summary line refreshes at once


def test_without_javascript_a_button_returns_to_the_dashboard(open_breaker, staff_client):
    response = staff_client.post("/health/groq/reset-breaker")
    assert response.status_code == 302 and response["Location"] == "/health/"


@pytest.fixture
def queue():
    """The broker's queue, emptied after the test (no worker runs here to take the tasks)."""
    yield
    app.control.purge()


def card_check_url(card: str) -> str:
    return re.search(r'hx-get="(/health/groq/\?check=[0-9.]+)"', card).group(1)


def test_run_health_check_queues_it_and_the_card_says_so(
    open_breaker, staff_client, groq_server, queue
):
    calls_before = len(groq_server.log)
    response = staff_client.post("/health/groq/check", **HTMX)
    card = response.content.decode()
    assert response.status_code == 200
    assert "Health check queued: the result appears here when a worker has run it." in card
    assert 'hx-trigger="every 1s"' in card  # it follows the check closely
    assert not HealthCheck.objects.exists()
    assert len(groq_server.log) == calls_before  # no provider call inside the request
    assert staff_client.get(card_check_url(card), **HTMX).content.decode().count("queued") == 1


def test_the_card_shows_the_check_once_a_worker_has_run_it(open_breaker, staff_client, queue):
    card = staff_client.post("/health/groq/check", **HTMX).content.decode()
    HealthCheck.objects.create(
        provider=open_breaker["groq"], ok=False, status_class="circuit_open", latency_ms=2
    )
    response = staff_client.get(card_check_url(card), **HTMX)
    body = response.content.decode()
    assert re.search(r"Health check run <time[^>]*>just now</time>: <strong>circuit_open", body)
    assert "</strong> in 2 ms." in body
    assert 'hx-trigger="every 5s"' in body  # back to the card's own pace
    assert "health-changed" in response["HX-Trigger"]  # the summary line follows


def test_a_queued_check_no_worker_ran_says_so(open_breaker, staff_client):
    asked = (timezone.now() - timedelta(minutes=5)).timestamp()
    body = staff_client.get(f"/health/groq/?check={asked}", **HTMX).content.decode()
    assert "was not run: is a Celery worker running?" in body
    assert 'hx-trigger="every 5s"' in body


@pytest.mark.parametrize("token", ["nan", "inf", "-1e20", "1e400", "abc", ""])
def test_a_hostile_check_parameter_is_no_check(open_breaker, staff_client, token):
    for headers in (HTMX, {}):
        response = staff_client.get(f"/health/groq/?check={token}", **headers)
        assert response.status_code == 200 and "data-check" not in response.content.decode()


def test_without_javascript_the_check_is_followed_on_the_providers_page(
    open_breaker, staff_client, queue
):
    response = staff_client.post("/health/groq/check")
    assert response.status_code == 302
    assert re.fullmatch(r"/health/groq/\?check=[0-9.]+", response["Location"])
    page = staff_client.get(response["Location"]).content.decode()
    assert "<html" in page and "Health check queued" in page


def test_a_disabled_provider_is_not_queued(open_breaker, staff_client, settings, queue):
    settings.GROQ_ENABLED = False
    body = staff_client.post("/health/groq/check", **HTMX).content.decode()
    assert "the provider is disabled: no health check was queued" in body
    assert "?check=" not in body


def test_with_tasks_run_at_once_the_card_has_the_result(open_breaker, staff_client, eager_tasks):
    response = staff_client.post("/health/groq/check", **HTMX)
    check = HealthCheck.objects.get()
    assert check.status_class == "circuit_open"  # the open breaker refused it, honestly
    assert "circuit breaker OPEN" in response.content.decode()


def test_invalidate_cache_forgets_the_providers_responses(
    open_breaker, staff_client, settings, groq_server, groq_client
):
    settings.PROVIDER_CACHE_ENABLED = True
    breaker.reset("groq")
    groq_server.clear()
    groq_server.expect_request(PATH).respond_with_json(MODELS)
    get(groq_client)
    staff_client.post("/health/groq/invalidate-cache", **HTMX)
    get(groq_client)
    assert len(groq_server.log) == 2


def test_anonymous_posts_are_refused(open_breaker, client):
    for action in ("reset-breaker", "check", "invalidate-cache"):
        response = client.post(f"/health/groq/{action}")
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert breaker_state() == "OPEN"
    assert not HealthCheck.objects.exists()


def test_buttons_need_the_csrf_token(open_breaker, django_user_model):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(django_user_model.objects.create_user("ops", password="pw", is_staff=True))
    assert browser.post("/health/groq/reset-breaker", **HTMX).status_code == 403
    assert breaker_state() == "OPEN"


def test_the_dashboard_query_count_does_not_grow_with_providers(
    open_breaker, staff_client, django_assert_max_num_queries
):
    with django_assert_max_num_queries(8):
        staff_client.get("/health/")


def test_prometheus_metrics(open_breaker, settings, client):
    settings.GPUBROKER_OPS_TOKEN = "scrape-token-0001"
    assert client.get("/metrics").status_code == 401
    text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-0001").content.decode()
    assert 'gpubroker_provider_circuit_breaker_state{provider="groq"} 2.0' in text
    assert 'gpubroker_provider_calls_total{outcome="server_error",provider="groq"} 5.0' in text
    assert 'gpubroker_provider_response_seconds_count{provider="groq"} 5.0' in text
    assert 'gpubroker_provider_rate_limiter_tokens{provider="groq"}' in text
    assert 'gpubroker_provider_cache_hits_total{provider="groq"} 0.0' in text
    assert 'gpubroker_provider_last_successful_poll_timestamp_seconds{provider="groq"} 0.0' in text


def test_liveness_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok", "shared_state": "ok"},
    }


def test_readiness_fails_when_the_broker_is_unreachable(client):
    reachable = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        response = client.get("/readyz")
    finally:
        app.conf.broker_url = reachable
    assert response.status_code == 503
    assert response.json()["checks"]["broker"].startswith("error: ")


def test_a_refresh_after_the_session_ended_sends_the_window_to_the_login_page(open_breaker, client):
    current = {**HTMX, "HTTP_HX_CURRENT_URL": "http://testserver/health/?x=1"}
    for response in (client.get("/health/groq/", **current), client.get("/health/", **current)):
        assert response.status_code == 401
        assert response["HX-Redirect"] == "/admin/login/?next=%2Fhealth%2F%3Fx%3D1"
        assert "<form" not in response.content.decode()  # nothing to paste into a card


def test_a_button_after_the_session_ended_changes_nothing_and_sends_to_login(
    open_breaker, client, django_user_model
):
    client.force_login(django_user_model.objects.create_user("visitor", password="pw"))
    response = client.post("/health/groq/reset-breaker", **HTMX)
    assert response.status_code == 401 and response["HX-Redirect"].startswith("/admin/login/")
    assert breaker_state() == "OPEN"


def test_after_a_reset_the_card_says_why_the_badge_stays(open_breaker, staff_client):
    body = staff_client.post("/health/groq/reset-breaker", **HTMX).content.decode()
    assert '<span class="badge" data-status>UNAVAILABLE</span>' in body  # 0% of 5 calls
    assert "Breaker closed; status follows the success rate of the last 5 minutes." in body


def test_fresh_times_read_just_now_or_seconds(registry, staff_client):
    now = timezone.now()
    registry["groq"].__class__.objects.filter(slug="groq").update(last_success_at=now)
    registry["groq"].__class__.objects.filter(slug="deepinfra").update(
        last_success_at=now - timedelta(seconds=42)
    )
    page = staff_client.get("/health/").content.decode()
    assert "just now</time>" in page and "42 seconds ago</time>" in page
    assert "0 minutes" not in page

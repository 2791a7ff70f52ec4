from __future__ import annotations

import pytest
from django.test import Client

from resilience import errors
from resilience.client import ProviderClient
from tests.conftest import MODELS, PATH, get, policy_for

pytestmark = pytest.mark.django_db
API = "/api/v1/provider-health"
TOKEN = "ops-token-for-tests-0001"


@pytest.fixture
def world(registry, settings, groq_server, groq_client):
    """Groq's breaker open after five 500s, DeepInfra answering, the others never called."""
    settings.GPUBROKER_OPS_TOKEN = TOKEN
    groq_server.expect_request(PATH).respond_with_json({}, status=500)
    for _ in range(5):
        with pytest.raises(errors.Transient):
            get(groq_client)
    settings.DEEPINFRA_BASE_URL = settings.GROQ_BASE_URL
    groq_server.expect_request("/v1/openai/models").respond_with_json(MODELS)
    deepinfra = ProviderClient(policy_for("deepinfra"))
    for _ in range(3):
        deepinfra.request("GET", "/v1/openai/models")
    deepinfra.close()
    return registry


def bearer() -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


def test_overall_health_has_the_guide_shape(world, staff_client):
    body = staff_client.get(f"{API}/health").json()
    assert body["status"] == "degraded"
    assert body["summary"] == {
        "total_providers": len(world),
        "healthy": 1,
        "degraded": 0,
        "unavailable": 1,
        "unknown": len(world) - 2,
    }
    assert body["providers"]["groq"] == {
        "status": "UNAVAILABLE",
        "success_rate": 0.0,
        "avg_response_time": body["providers"]["groq"]["avg_response_time"],
        "circuit_breaker": "OPEN",
        "rate_limit_utilization": pytest.approx(5 / 30, abs=0.01),
    }
    assert body["providers"]["deepinfra"]["status"] == "HEALTHY"
    assert body["providers"]["deepinfra"]["success_rate"] == 1.0
    assert body["providers"]["huggingface"]["status"] == "UNKNOWN"


def test_one_providers_health(world, client):
    body = client.get(f"{API}/providers/deepinfra/health", **bearer()).json()
    assert body["provider"] == "deepinfra" and body["status"] == "HEALTHY"
    assert body["calls"] == 3 and body["errors"] == {}
    assert body["p95_response_time"] is not None
    assert set(body) >= {"circuit_breaker", "rate_limiter", "cache", "last_success_at"}


def test_circuit_breakers_and_reset(world, client):
    body = client.get(f"{API}/circuit-breakers", **bearer()).json()
    assert body["groq"] == {
        "state": "OPEN",
        "failure_count": 5,
        "success_count": 0,
        "last_failure_time": body["groq"]["last_failure_time"],
        "trip_count": 1,
    }
    assert body["deepinfra"]["success_count"] == 3
    reset = client.post(f"{API}/circuit-breakers/groq/reset", **bearer())
    assert reset.json()["groq"]["state"] == "CLOSED"
    assert client.get(f"{API}/circuit-breakers", **bearer()).json()["groq"]["state"] == "CLOSED"


def test_rate_limiters(world, staff_client):
    body = staff_client.get(f"{API}/rate-limiters").json()
    assert set(body["groq"]) >= {
        "rate",
        "capacity",
        "available_tokens",
        "utilization",
        "requests_blocked",
    }
    assert body["groq"]["rate"] == 30 and body["groq"]["capacity"] == 30


def test_cache_stats_and_invalidate(world, staff_client, settings):
    body = staff_client.get(f"{API}/cache/stats").json()
    assert set(body) == {"total_hits", "total_misses", "hit_ratio", "providers"}
    assert body["providers"]["deepinfra"]["current_ttl"] == 300
    assert body["providers"]["groq"]["current_ttl"] == 10
    one = staff_client.post(f"{API}/cache/invalidate?provider=groq")
    assert one.json() == {"invalidated": ["groq"]}
    everyone = staff_client.post(f"{API}/cache/invalidate").json()["invalidated"]
    assert sorted(everyone) == sorted(world)


def test_metrics_summary(world, staff_client):
    body = staff_client.get(f"{API}/metrics/summary").json()
    assert body["providers"]["groq"]["errors"] == {"server_error": 5}
    assert body["summary"]["total_providers"] == len(world)


def test_health_check_now_runs_the_providers_check(world, staff_client):
    response = staff_client.post(f"{API}/providers/deepinfra/health-check")
    body = response.json()
    assert body["check"]["ok"] is True and body["check"]["status_class"] == "ok"
    assert body["health"]["last_health_check"] == "ok"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/providers/nope/health"),
        ("post", "/providers/nope/health-check"),
        ("post", "/circuit-breakers/nope/reset"),
        ("post", "/cache/invalidate?provider=nope"),
    ],
)
def test_an_unknown_slug_is_a_json_404(world, staff_client, method, path):
    response = getattr(staff_client, method)(API + path)
    assert response.status_code == 404
    assert response.json() == {"error": "Unknown provider 'nope'."}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/providers/no.such%20thing/health"),
        ("get", "/providers/%00/health"),
        ("post", "/circuit-breakers/gr%C3%B6q/reset"),
        ("post", "/cache/invalidate?provider=%00"),
    ],
)
def test_text_that_is_not_a_slug_is_an_unknown_provider_too(world, client, method, path):
    response = getattr(client, method)(API + path, **bearer())
    assert response.status_code == 404
    assert response.json()["error"].startswith("Unknown provider")


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/health"), ("get", "/circuit-breakers"), ("post", "/circuit-breakers/groq/reset")],
)
def test_anonymous_callers_are_refused(world, client, method, path):
    response = getattr(client, method)(API + path)
    assert response.status_code == 401
    assert client.get(f"{API}/circuit-breakers", **bearer()).json()["groq"]["state"] == "OPEN"


def test_the_bearer_scheme_is_case_insensitive(world, client):
    assert client.get(f"{API}/health", HTTP_AUTHORIZATION=f"bearer {TOKEN}").status_code == 200
    assert client.get(f"{API}/health", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    assert client.get(f"{API}/health", HTTP_AUTHORIZATION=TOKEN).status_code == 401


def test_a_wrong_token_and_non_staff_users_are_refused(world, client, django_user_model):
    assert client.get(f"{API}/health", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    user = django_user_model.objects.create_user("visitor", password="pw")
    client.force_login(user)
    assert client.post(f"{API}/circuit-breakers/groq/reset").status_code == 403


def test_staff_writes_need_the_csrf_token(world, django_user_model):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(django_user_model.objects.create_user("ops", password="pw", is_staff=True))
    assert browser.post(f"{API}/circuit-breakers/groq/reset").status_code == 403
    assert browser.get(f"{API}/circuit-breakers").json()["groq"]["state"] == "OPEN"
    browser.get("/health/")  # sets the csrftoken cookie
    token = browser.cookies["csrftoken"].value
    reset = browser.post(f"{API}/circuit-breakers/groq/reset", HTTP_X_CSRFTOKEN=token)
    assert reset.json()["groq"]["state"] == "CLOSED"


def test_reads_are_get_only_and_writes_post_only(world, staff_client):
    assert staff_client.post(f"{API}/health").status_code == 405
    assert staff_client.get(f"{API}/circuit-breakers/groq/reset").status_code == 405

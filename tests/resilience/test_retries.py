from __future__ import annotations

import time

import pytest

from health import checks, status
from resilience import breaker, errors, metrics
from resilience.store import store
from tests.conftest import KEY, MODELS, PATH, get, policy_for, requests_to

pytestmark = pytest.mark.django_db


@pytest.fixture
def retrying(settings, groq_server):
    settings.PROVIDER_MAX_RETRIES = 3
    return groq_server


def test_it_retries_a_5xx_and_returns_the_answer(retrying, groq_client):
    retrying.expect_oneshot_request(PATH).respond_with_json({}, status=502)
    retrying.expect_oneshot_request(PATH).respond_with_json({}, status=503)
    retrying.expect_request(PATH).respond_with_json(MODELS)
    assert get(groq_client).json() == MODELS
    assert requests_to(retrying) == 3


def test_it_gives_up_after_max_retries_with_the_typed_error(retrying, groq_client):
    retrying.expect_request(PATH).respond_with_json({"error": "boom"}, status=500)
    with pytest.raises(errors.Transient, match="HTTP 500"):
        get(groq_client)
    assert requests_to(retrying) == 4  # the call and three retries


def test_it_waits_out_retry_after_on_429(retrying, settings, groq_client):
    settings.PROVIDER_RETRY_MAX_DELAY = 2
    retrying.expect_oneshot_request(PATH).respond_with_json(
        {"error": {"message": "Rate limit reached"}}, status=429, headers={"retry-after": "1"}
    )
    retrying.expect_request(PATH).respond_with_json(MODELS)
    started = time.monotonic()
    assert get(groq_client).json() == MODELS
    assert time.monotonic() - started >= 1
    assert requests_to(retrying) == 2


def test_a_retry_after_longer_than_the_bound_goes_to_the_caller(retrying, groq_client):
    retrying.expect_request(PATH).respond_with_json(
        {"error": "slow down"}, status=429, headers={"retry-after": "120"}
    )
    with pytest.raises(errors.RateLimited) as raised:
        get(groq_client)
    assert raised.value.retry_after == 120
    assert requests_to(retrying) == 1


def test_a_401_is_not_retried_does_not_trip_but_marks_the_provider_unavailable(
    retrying, registry, groq_client
):
    retrying.expect_request(PATH).respond_with_json(
        {"error": {"message": f"Invalid API Key {KEY}"}}, status=401
    )
    for _ in range(6):
        with pytest.raises(errors.InvalidKey):
            get(groq_client)
    assert requests_to(retrying) == 6  # one each: never retried
    assert breaker.current("groq")["state"] == "CLOSED"
    report = status.report(registry["groq"])
    assert report.status == "UNAVAILABLE"
    assert report.window.errors == report.total_errors == {"invalid_key": 6}
    check = checks.run_check(registry["groq"])
    assert check.status_class == "invalid_key" and check.status_code == 401
    assert KEY not in check.error
    provider = status.annotated(type(registry["groq"]).objects.filter(slug="groq")).get()
    assert status.report(provider).reason == "latest health check: the API key was rejected (401)"


def test_a_timeout_is_retried_then_raised_as_transient(retrying, settings, groq_client):
    settings.GROQ_TIMEOUT = 0.1
    settings.PROVIDER_MAX_RETRIES = 1

    def slow(request):
        time.sleep(0.25)
        from werkzeug import Response

        return Response("{}", content_type="application/json")

    retrying.expect_request(PATH).respond_with_handler(slow)
    client = type(groq_client)(policy_for("groq"))  # picks up the shorter timeout
    with pytest.raises(errors.Transient, match="timed out"):
        get(client)
    client.close()
    counters = store().read([], [metrics.stats_key("groq")])[1][metrics.stats_key("groq")]
    assert counters["class:timeout"] == 2


def test_a_post_is_retried_after_a_429_but_not_after_a_5xx(retrying, groq_client):
    """A 5xx may come after the provider did the work (an inference, a rented machine)."""
    chat = "/openai/v1/chat/completions"
    retrying.expect_oneshot_request(chat, method="POST").respond_with_json({}, status=429)
    retrying.expect_oneshot_request(chat, method="POST").respond_with_json({}, status=500)
    retrying.expect_request(chat, method="POST").respond_with_json({"choices": []})
    with pytest.raises(errors.Transient):
        groq_client.request("POST", chat, json={"model": "x", "messages": []})
    assert requests_to(retrying, chat) == 2

"""Routing: cheapest first by default, the request's `provider` object, other strategies,
fallback before the first byte only, and a 503 that names why each candidate was skipped."""

from __future__ import annotations

import socket
import time

import openai
import pytest
from cryptography.fernet import Fernet
from werkzeug import Request, Response

from health import checks
from providers.models import Credential, Provider
from resilience import breaker
from resilience.store import store
from tests.broker.conftest import (
    CHAT_PATHS,
    PROVIDER_KEYS,
    chat,
    recorded,
    recorded_stream,
    sent_to,
    serve_chat,
)


def open_breaker(slug: str) -> None:
    opened = breaker.initial() | {"state": breaker.OPEN, "opened_at": time.time(), "trip_count": 1}
    store().update(breaker.key(slug), lambda s: (opened, None))


def serve_all(server) -> None:
    for slug in CHAT_PATHS:
        serve_chat(server, slug)


def test_order_is_honoured(sdk, world, httpserver):
    serve_all(httpserver)
    raw = chat(sdk, extra_body={"provider": {"order": ["groq", "deepinfra"]}})
    assert raw.headers["x-gpubroker-provider"] == "groq"


def test_ignore_and_only_leave_providers_out(sdk, world, httpserver):
    serve_all(httpserver)
    raw = chat(sdk, extra_body={"provider": {"ignore": ["huggingface"]}})
    assert raw.headers["x-gpubroker-provider"] == "deepinfra"


def test_it_falls_back_from_a_provider_answering_500(sdk, world, httpserver):
    serve_chat(httpserver, "huggingface", status=500)
    serve_chat(httpserver, "deepinfra")
    raw = chat(sdk)
    assert raw.headers["x-gpubroker-provider"] == "deepinfra"
    assert raw.headers["x-gpubroker-attempts"] == "2"
    (usage,) = recorded()
    assert [(a["provider"], a["error"]) for a in usage.attempts] == [
        ("huggingface", "server_error")
    ]


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_it_falls_back_from_a_provider_refusing_the_connection(sdk, world, httpserver, settings):
    settings.HUGGINGFACE_BASE_URL = closed_port()
    serve_chat(httpserver, "deepinfra")
    raw = chat(sdk)
    assert raw.headers["x-gpubroker-provider"] == "deepinfra"
    (usage,) = recorded()
    ((provider, error, message),) = [
        (a["provider"], a["error"], a["message"]) for a in usage.attempts
    ]
    assert (provider, error) == ("huggingface", "connection")
    assert "connection failed" in message


def test_it_falls_back_from_a_provider_too_slow_to_answer(sdk, world, httpserver, settings):
    settings.HUGGINGFACE_TIMEOUT = 0.3

    def slow(request: Request) -> Response:
        time.sleep(1.0)
        return Response("{}", content_type="application/json")

    httpserver.expect_request(CHAT_PATHS["huggingface"]).respond_with_handler(slow)
    serve_chat(httpserver, "deepinfra")
    raw = chat(sdk)
    assert raw.headers["x-gpubroker-provider"] == "deepinfra"
    (usage,) = recorded()
    assert [(a["provider"], a["error"]) for a in usage.attempts] == [("huggingface", "timeout")]
    assert "timed out after" in usage.attempts[0]["message"]


def test_no_fallback_when_the_client_forbids_it(sdk, world, httpserver):
    serve_chat(httpserver, "huggingface", status=500)
    serve_chat(httpserver, "deepinfra")
    with pytest.raises(openai.APIStatusError) as caught:
        chat(sdk, extra_body={"provider": {"allow_fallbacks": False}})
    assert caught.value.status_code == 503
    assert sent_to(httpserver, "deepinfra") == []


def test_no_fallback_after_the_first_byte(sdk, world, httpserver):
    def breaks(request: Request) -> Response:
        first = recorded_stream("huggingface").split("\n\n")[0] + "\n\n"

        def body():
            yield first
            raise ConnectionError("provider fell over mid-stream")

        return Response(body(), content_type="text/event-stream")

    httpserver.expect_request(CHAT_PATHS["huggingface"]).respond_with_handler(breaks)
    serve_chat(httpserver, "deepinfra")
    stream = chat(sdk, stream=True).parse()
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk)
    assert received[0].choices[0].delta.content == "Hello"
    assert sent_to(httpserver, "deepinfra") == []  # never tried once a byte was sent
    assert [u.outcome for u in recorded()] == ["stream_error"]


def test_a_provider_whose_breaker_is_open_is_skipped(sdk, world, httpserver):
    serve_all(httpserver)
    open_breaker("huggingface")
    raw = chat(sdk)
    assert raw.headers["x-gpubroker-provider"] == "deepinfra"
    assert sent_to(httpserver, "huggingface") == []


def test_round_robin_spreads_requests(sdk, world, httpserver):
    serve_all(httpserver)
    served = [
        chat(sdk, extra_body={"provider": {"sort": "round-robin"}}).headers["x-gpubroker-provider"]
        for _ in range(3)
    ]
    assert sorted(served) == ["deepinfra", "groq", "huggingface"]


def test_latency_routing_prefers_the_fastest_observed_offer(sdk, world, httpserver):
    serve_all(httpserver)
    world["groq"].latency_ms = 40.0
    world["groq"].save()
    world["deepinfra"].latency_ms = 400.0
    world["deepinfra"].save()
    raw = chat(sdk, extra_body={"provider": {"sort": "latency"}})
    assert raw.headers["x-gpubroker-provider"] == "groq"


def test_weighted_routing_avoids_a_failing_provider(sdk, world, httpserver):
    from resilience import metrics

    serve_all(httpserver)
    for _ in range(20):  # huggingface 45%: unavailable; deepinfra 60%: weighted low
        metrics.record("huggingface", "server_error", 0.01)
    for _ in range(9):
        metrics.record("huggingface", "ok", 0.01)
    served = {
        chat(sdk, extra_body={"provider": {"sort": "weighted"}}).headers["x-gpubroker-provider"]
        for _ in range(6)
    }
    assert "huggingface" not in served


def test_a_request_no_candidate_can_serve_says_why_each_was_skipped(
    sdk, world, httpserver, settings
):
    serve_all(httpserver)
    open_breaker("huggingface")
    settings.GROQ_API_KEY = ""
    settings.DEEPINFRA_ENABLED = False
    with pytest.raises(openai.APIStatusError) as caught:
        chat(sdk)
    assert caught.value.status_code == 503
    error = caught.value.body
    assert error["code"] == "no_healthy_provider"
    assert "huggingface" in error["message"] and "circuit breaker open" in error["message"]
    assert "no API key configured" in error["message"]
    assert "disabled by DEEPINFRA_ENABLED" in error["message"]
    assert len(error["metadata"]["skipped"]) == 3
    assert httpserver.log == []


def test_a_key_the_health_check_found_rejected_is_skipped_with_the_reason(
    sdk, world, httpserver, settings
):
    httpserver.expect_request("/openai/v1/models").respond_with_json(
        {"error": {"message": "Invalid API Key"}}, status=401
    )
    assert checks.check("groq").status_class == "invalid_key"
    serve_all(httpserver)
    raw = chat(sdk, extra_body={"provider": {"order": ["groq"]}})
    assert raw.headers["x-gpubroker-provider"] == "huggingface"
    assert raw.headers["x-gpubroker-attempts"] == "1"  # skipped, not tried and failed
    with pytest.raises(openai.APIStatusError) as caught:
        chat(sdk, extra_body={"provider": {"only": ["groq"]}})
    assert caught.value.status_code == 503
    reason = f"groq (offer {world['groq'].pk}): latest health check: the API key was rejected"
    assert reason in caught.value.body["message"]
    assert sent_to(httpserver, "groq") == []
    httpserver.clear()  # the provider takes the key again, and the next check says so
    httpserver.expect_request("/openai/v1/models").respond_with_json({"data": []})
    serve_all(httpserver)
    assert checks.check("groq").ok
    raw = chat(sdk, extra_body={"provider": {"only": ["groq"]}})
    assert raw.headers["x-gpubroker-provider"] == "groq"


def test_a_rejected_key_is_not_held_against_the_key_put_in_since(world, httpserver, settings):
    httpserver.expect_request("/openai/v1/models").respond_with_json({}, status=401)
    checks.check("groq")
    groq = Provider.objects.get(slug="groq")
    assert groq.key_finding == "the API key was rejected (401)"
    settings.GROQ_API_KEY = "gsk_anotherkey000000000000009"
    assert groq.key_finding == ""
    httpserver.clear()
    httpserver.expect_request("/openai/v1/models").respond_with_json({}, status=503)
    checks.check("groq")  # a failure that says nothing about the key changes nothing
    settings.GROQ_API_KEY = PROVIDER_KEYS["groq"]
    assert Provider.objects.get(slug="groq").key_finding == "the API key was rejected (401)"


def test_a_stored_key_that_cannot_be_decrypted_is_skipped_not_a_500(
    sdk, world, httpserver, settings
):
    serve_all(httpserver)
    settings.GPUBROKER_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    credential = Credential(provider=Provider.objects.get(slug="huggingface"))
    credential.set_key("hf_storedkey0000000000000000004")
    credential.save()
    settings.GPUBROKER_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # rotated away
    assert chat(sdk).headers["x-gpubroker-provider"] == "deepinfra"
    with pytest.raises(openai.APIStatusError) as caught:
        chat(sdk, extra_body={"provider": {"only": ["huggingface"]}})
    assert caught.value.status_code == 503
    assert "the stored API key cannot be decrypted" in caught.value.body["message"]

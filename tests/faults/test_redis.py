"""Redis holds caches and live stats: down or hung, nothing that users need fails with it."""

from __future__ import annotations

import time

import pytest

from tests.marketplace.conftest import llm, publish

pytestmark = pytest.mark.slow


def assert_degraded_gracefully(stack, within: float) -> None:
    # The marketplace trusts a CLOSED breaker state read within PROVIDER_CIRCUIT_BREAKER_LOCAL_TTL
    # (1 s) without a round trip, as the resilient client does: past that it reads and learns.
    time.sleep(1.1)
    started = time.monotonic()
    page = stack.get("/")
    assert page.status_code == 200
    assert "Live stats unavailable" in page.text
    assert "llama-3.1-8b" in page.text  # the offers, from Postgres
    assert time.monotonic() - started < within

    json_paths = ("/api/v1/provider-health/health", "/api/v1/provider-health/metrics/summary")
    for path in (*json_paths, "/metrics"):
        response = stack.api(path)
        assert response.status_code == 503, path
        assert response.headers["content-type"] == "application/json"
        assert response.json()["dependency"] == "redis"

    started = time.monotonic()
    ready = stack.get("/readyz")
    assert time.monotonic() - started < 2.5  # 2 s, plus this slow machine's round trip
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["shared_state"] != "ok" and checks["broker"] != "ok"


def test_redis_down_pages_render_from_postgres_and_json_says_503(stack, registry, own_redis):
    publish(registry["groq"], llm("llama-3.1-8b", usd_per_1m_input=0.05))
    web = stack("groq")
    web.web()
    assert web.get("/").status_code == 200 and web.get("/readyz").status_code == 200
    own_redis.stop()
    assert_degraded_gracefully(web, within=3)


def test_redis_hung_answers_within_seconds_not_minutes(stack, registry, own_redis):
    publish(registry["groq"], llm("llama-3.1-8b", usd_per_1m_input=0.05))
    web = stack("groq")
    web.web()
    assert web.get("/").status_code == 200
    own_redis.pause()
    try:
        assert_degraded_gracefully(web, within=4)
    finally:
        own_redis.resume()
    assert web.get("/readyz").status_code == 200  # back on its own

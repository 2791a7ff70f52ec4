from __future__ import annotations

from decimal import Decimal

import pytest
from django.conf import settings
from redis import Redis

from health import checks, status
from providers.models import Offer
from providers.pipeline import poll_provider
from resilience import cache, errors
from resilience.client import ProviderClient
from resilience.policy import call_policy
from tests.conftest import KEY, MODELS, PATH, get, payload, policy_for, requests_to
from tests.providers.test_huggingface import serve_catalog
from tests.providers.test_pipeline import serve_catalog as serve_deepinfra

pytestmark = pytest.mark.django_db


@pytest.fixture
def cached(settings, groq_server):
    settings.PROVIDER_CACHE_ENABLED = True
    groq_server.expect_request(PATH).respond_with_json(MODELS, headers={"x-request-id": "r1"})
    return groq_server


@pytest.mark.parametrize(
    ("success_rate", "ttl"),
    [(1.0, 300), (0.9, 300), (0.89, 45), (0.7, 45), (0.69, 30), (0.5, 30), (0.49, 10), (0, 10)],
)
def test_ttl_follows_the_success_rate_table(success_rate, ttl):
    assert cache.ttl_for(success_rate) == ttl


def test_with_no_recent_calls_the_ttl_is_the_base_ttl(settings):
    settings.PROVIDER_CACHE_TTL = 30
    assert cache.ttl_for(None) == 30


def test_a_cached_get_makes_no_request(cached, groq_client):
    first = get(groq_client)
    second = get(groq_client)
    assert second.json() == first.json() == MODELS
    assert second.headers["x-request-id"] == "r1"
    assert second.headers["x-gpubroker-cache"].startswith("hit")
    assert requests_to(cached) == 1


def redis_entries() -> dict[bytes, int]:
    """The response entries in the Django cache (Redis), with their remaining TTLs."""
    redis = Redis.from_url(settings.REDIS_URL)
    keys = [k for k in redis.keys("*provider-cache:groq:*") if not k.endswith(b"generation")]
    return {k: redis.ttl(k) for k in keys}


def test_an_entry_is_kept_for_the_ttl_of_the_success_rate_when_stored(cached, groq_client):
    cached.clear()
    cached.expect_oneshot_request(PATH).respond_with_json({}, status=500)
    cached.expect_oneshot_request(PATH).respond_with_json({}, status=500)
    cached.expect_request(PATH).respond_with_json(MODELS)
    for _ in range(2):
        with pytest.raises(errors.Transient):
            get(groq_client, params={"n": "failing"})
    for n in range(3):  # stored at 1/3, 2/4 and 3/5 successes
        get(groq_client, params={"n": n})
    assert sorted(redis_entries().values()) == [
        pytest.approx(10, abs=1),
        pytest.approx(30, abs=1),
        pytest.approx(30, abs=1),
    ]


def test_the_cache_key_hashes_the_api_key_and_keys_do_not_share_entries(cached, groq_client):
    get(groq_client)
    groq_client.request("GET", PATH, headers={"Authorization": "Bearer gsk_anotherkey000000000002"})
    assert requests_to(cached) == 2
    assert len(redis_entries()) == 2
    assert not [k for k in redis_entries() if KEY.encode() in k]


def test_only_successful_gets_are_cached(cached, groq_client):
    cached.expect_request("/openai/v1/chat/completions", method="POST").respond_with_json({})
    cached.expect_request("/missing").respond_with_json({}, status=404)
    for _ in range(2):
        groq_client.request("POST", "/openai/v1/chat/completions", json={"model": "x"})
        with pytest.raises(errors.NotFound):
            get(groq_client, "/missing")
    assert requests_to(cached, "/openai/v1/chat/completions") == 2
    assert requests_to(cached, "/missing") == 2


def test_fresh_calls_skip_the_cache_but_fill_it(cached, groq_client):
    with call_policy(fresh=True):
        get(groq_client)
        get(groq_client)
    get(groq_client)
    assert requests_to(cached) == 2


def test_invalidate_empties_one_provider_only(cached, settings, groq_client):
    settings.DEEPINFRA_BASE_URL = settings.GROQ_BASE_URL
    deepinfra = ProviderClient(policy_for("deepinfra"))
    get(groq_client)
    get(deepinfra)
    cache.invalidate(["groq"])
    get(groq_client)
    get(deepinfra)
    deepinfra.close()
    assert requests_to(cached) == 3  # groq twice, deepinfra once


def test_it_can_be_switched_off(cached, settings, groq_client):
    settings.PROVIDER_CACHE_ENABLED = False
    get(groq_client)
    get(groq_client)
    assert requests_to(cached) == 2


def test_stats_count_hits_misses_and_show_the_current_ttl(cached, registry, groq_client):
    for _ in range(3):
        get(groq_client)
    assert status.report(registry["groq"]).cache == {
        "enabled": True,
        "hits": 2,
        "misses": 1,
        "hit_ratio": 0.667,
        "current_ttl": 300,
    }


# What the cache serves in the running product: calls that carry no prices.


def test_a_poll_takes_context_lengths_from_the_health_checks_answer(registry, serve):
    deepinfra = registry["deepinfra"]
    server = serve(deepinfra)
    serve_deepinfra(server)
    checks.run_check(deepinfra)  # keyless: GET /v1/openai/models, stored on the way
    run = poll_provider("deepinfra")
    assert run.outcome == "ok" and run.http_calls == 1  # only the price list went out
    assert requests_to(server, "/v1/openai/models") == 1
    assert requests_to(server, "/models/list") == 1
    offer = Offer.objects.get(upstream_id="meta-llama/Meta-Llama-3.1-8B-Instruct")
    assert offer.context_length == 131072  # from the cached /v1/openai/models
    assert status.report(deepinfra).cache["hits"] == 1


def test_a_repoll_records_new_prices_and_reuses_only_the_task_tags(registry, serve):
    huggingface = registry["huggingface"]
    server = serve(huggingface, "HUB_URL")
    serve_catalog(server)
    poll_provider("huggingface")
    router = payload("huggingface/router_models.json")
    router["data"][0]["providers"][0]["pricing"]["input"] = 9.99
    server.clear()
    serve_catalog(server, router)
    run = poll_provider("huggingface")
    assert run.http_calls == 1  # the router's prices; both Hub pages came from the cache
    assert requests_to(server, "/v1/models") == 1 and requests_to(server, "/api/models") == 0
    model, route = router["data"][0]["id"], router["data"][0]["providers"][0]["provider"]
    offer = Offer.objects.get(upstream_id=f"{model}:{route}")
    assert offer.usd_per_1m_input == Decimal("9.99")
    tagged = Offer.objects.get(upstream_id="Qwen/Qwen2.5-VL-7B-Instruct:hyperbolic")
    assert tagged.task_tag == "image-text-to-text"  # from the cached second Hub page

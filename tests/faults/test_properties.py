"""Hostile query strings: whatever a URL says, the marketplace and the JSON API answer it
without a 5xx (property-based, with hypothesis)."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.models import ApiKey
from providers.models import Kind
from tests.faults.conftest import spare_port
from tests.marketplace.conftest import gpu, llm, publish

pytestmark = pytest.mark.django_db
FILTER_PARAMS = [
    "q",
    "kind",
    "provider",
    "region",
    "task",
    "gpu",
    "min_vram",
    "max_price",
    "min_context",
    "sort",
    "unavailable",
    "page",
]
# Values a person, a crawler or an attacker puts in a URL: numbers of every size and sign,
# NaN and infinities, exponents, the choices' own values, NUL bytes and any text at all.
VALUES = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(
        [
            "",
            "nan",
            "-inf",
            "1e400",
            "0x10",
            "1_000",
            "\x00",
            "%00",
            "groq",
            Kind.GPU,
            "H100",
            "price",
            "-price",
            "gscore",
            "US",
            "text-generation",
            "on",
            "1",
            "true",
            "9" * 50,
        ]
    ),
)
QUERIES = st.lists(
    st.tuples(st.one_of(st.sampled_from(FILTER_PARAMS), st.text(max_size=10)), VALUES),
    max_size=8,
)
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def market(registry):
    publish(registry["groq"], llm("llama-3.1-8b", usd_per_1m_input=0.05, region="US"))
    publish(registry["vastai"], gpu("1", "H100 SXM 80GB", usd_per_gpu_hour=2.5))


@FUZZ
@given(query=QUERIES, htmx=st.booleans())
def test_no_marketplace_url_is_a_server_error(client, market, query, htmx):
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    response = client.get(f"/?{urlencode(query)}", **headers)
    assert response.status_code < 500, query


JSON_GETS = [
    "/api/v1/provider-health/health",
    "/api/v1/provider-health/providers/{slug}/health",
    "/api/v1/provider-health/circuit-breakers",
    "/api/v1/provider-health/rate-limiters",
    "/api/v1/provider-health/cache/stats",
    "/api/v1/provider-health/metrics/summary",
    "/api/v1/providers/sync/runs/{pk}",
]
JSON_POSTS = [
    "/api/v1/providers/sync",
    "/api/v1/provider-health/providers/{slug}/health-check",
    "/api/v1/provider-health/circuit-breakers/{slug}/reset",
    "/api/v1/provider-health/cache/invalidate",
]
SLUGS = st.one_of(st.sampled_from(["groq", "nope", "GROQ", "a" * 300]), st.text(max_size=20))
PKS = st.one_of(st.integers(min_value=0, max_value=2**70), st.just(1))
PARAMS = st.dictionaries(
    st.sampled_from(["provider", "wait", "page", "x"]),
    st.one_of(VALUES, st.sampled_from(["nope", "%00", "\x00", "-1", "1e9", "nan"])),
    max_size=3,
)


@FUZZ
@given(path=st.sampled_from(JSON_GETS), slug=SLUGS, pk=PKS, params=PARAMS)
def test_no_json_get_is_a_server_error(staff_client, registry, path, slug, pk, params):
    params.pop("provider", None) if "sync" in path else None
    url = path.format(slug=_segment(slug), pk=pk)
    response = staff_client.get(url, params)
    assert response.status_code < 500, (url, params)
    assert response["Content-Type"].startswith("application/json")


@FUZZ
@given(path=st.sampled_from(JSON_POSTS), slug=SLUGS, params=PARAMS)
def test_no_json_post_is_a_server_error(staff_client, registry, path, slug, params):
    # Only unknown providers here (a known one would queue a real poll): every parameter
    # is still parsed, and `wait` must not hold the request.
    params["provider"] = "nope-" + _segment(slug)
    url = path.format(slug="nope-" + _segment(slug))
    response = staff_client.post(f"{url}?{urlencode(params)}")
    assert response.status_code < 500, (url, params)
    assert response["Content-Type"].startswith("application/json")


def _segment(text: str) -> str:
    """Text as one URL path segment (what a client would send)."""
    return quote(text, safe="") or "x"


# The broker's OpenAI-compatible endpoints: any JSON (or none) in the body, any bearer.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers(-(2**70), 2**70) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
CHAT_FIELDS = ["model", "messages", "stream", "max_tokens", "temperature", "n", "input", "tools"]
BODIES = st.one_of(
    st.dictionaries(st.sampled_from(CHAT_FIELDS), JSON_VALUES, max_size=6).map(json.dumps),
    JSON_VALUES.map(json.dumps),
    st.text(max_size=40),
    st.just(""),
)
BROKER_POSTS = ["/v1/chat/completions", "/v1/embeddings", "/api/v1/inference", "/api/v1/auth"]
UPSTREAM_FAILED = {502, 503, 504}  # the gateway's own words for a provider that failed


@pytest.fixture
def broker_key(market, settings) -> str:
    # A body that happens to be a valid request is routed: to a closed loopback port.
    settings.GROQ_BASE_URL = f"http://127.0.0.1:{spare_port()}"
    return ApiKey.issue("hypothesis")[1]


@FUZZ
@given(path=st.sampled_from(BROKER_POSTS), body=BODIES, keyed=st.booleans())
def test_no_broker_request_is_a_server_error(client, broker_key, path, body, keyed):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {broker_key}"} if keyed else {}
    response = client.post(path, body, content_type="application/json", **headers)
    assert response.status_code < 500 or response.status_code in UPSTREAM_FAILED, (path, body)
    assert response["Content-Type"].startswith(("application/json", "text/event-stream"))


@FUZZ
@given(bearer=st.text(max_size=60))
def test_no_bearer_on_the_broker_is_a_server_error(client, broker_key, bearer):
    response = client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {bearer}")
    assert response.status_code in (200, 401), bearer

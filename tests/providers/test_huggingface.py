from __future__ import annotations

from decimal import Decimal

import pytest

from resilience import errors
from tests.conftest import by_id, payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def huggingface(registry, serve):
    provider = registry["huggingface"]
    server = serve(provider, "HUB_URL")
    return provider, server


def serve_catalog(server, router: dict | None = None):
    """The router's priced catalog and the Hub's task tags on two linked pages."""
    router = payload("huggingface/router_models.json") if router is None else router
    server.expect_request("/v1/models").respond_with_json(router)
    next_page = server.url_for("/api/models") + "?cursor=abc&limit=1000"
    server.expect_request(
        "/api/models", query_string={"cursor": "abc", "limit": "1000"}
    ).respond_with_json(payload("huggingface/hub_models_page2.json"))
    server.expect_request("/api/models").respond_with_json(
        payload("huggingface/hub_models_page1.json"),
        headers={"Link": f'<{next_page}>; rel="next"'},
    )


def test_it_makes_one_offer_per_model_and_serving_provider(huggingface):
    provider, server = huggingface
    serve_catalog(server)
    offers = by_id(provider.adapter().list_models())
    novita = offers["deepseek-ai/DeepSeek-V4-Pro:novita"]
    assert novita.serving_provider == "novita"
    assert novita.canonical_id == "deepseek-ai/deepseek-v4-pro"
    assert novita.usd_per_1m_input == Decimal("1.69")
    assert novita.usd_per_1m_output == Decimal("3.38")
    assert novita.throughput_tps == pytest.approx(24.69, abs=0.01)
    assert "deepseek-ai/DeepSeek-V4-Pro:together" in offers


def test_a_route_without_pricing_has_an_unknown_price_not_zero(huggingface):
    provider, server = huggingface
    serve_catalog(server)
    fireworks = by_id(provider.adapter().list_models())["deepseek-ai/DeepSeek-V4-Pro:fireworks-ai"]
    assert fireworks.usd_per_1m_input is None and fireworks.usd_per_1m_output is None


def test_a_route_in_error_is_unavailable(huggingface):
    provider, server = huggingface
    serve_catalog(server)
    offers = by_id(provider.adapter().list_models())
    assert offers["meta-llama/Llama-3.3-70B-Instruct:hyperbolic"].available is False


def test_it_follows_hub_pagination_for_tasks(huggingface):
    provider, server = huggingface
    serve_catalog(server)
    adapter = provider.adapter()
    offers = by_id(adapter.list_models())
    # Both Hub pages were read: the second page's model has its pipeline tag.
    vl = offers["Qwen/Qwen2.5-VL-7B-Instruct:hyperbolic"]
    assert (vl.task, vl.task_tag) == ("vision", "image-text-to-text")
    assert adapter.calls == 3


def test_it_reads_the_ratelimit_header_on_429(huggingface):
    provider, server = huggingface
    server.expect_request("/v1/models").respond_with_json(
        payload("huggingface/error_429.json"),
        status=429,
        headers={
            "RateLimit": '"api";r=0;t=55',
            "RateLimit-Policy": '"fixed window";"api";q=2500;w=300',
        },
    )
    with pytest.raises(errors.RateLimited, match="rate limit you") as raised:
        provider.adapter().list_models()
    assert raised.value.retry_after == 55


def test_test_connection_reports_an_invalid_token(huggingface, settings):
    provider, server = huggingface
    settings.HUGGINGFACE_API_KEY = "hf_invalidtoken123456"
    server.expect_request("/api/whoami-v2").respond_with_json(
        {"error": "Invalid credentials in Authorization header"}, status=401
    )
    result = provider.test_connection()
    assert result.status == "invalid key"
    assert "hf_invalidtoken123456" not in result.detail


def test_it_keeps_what_the_router_reports_each_route_supports(huggingface):
    provider, server = huggingface
    serve_catalog(server)
    offers = by_id(provider.adapter().list_models())
    together = offers["deepseek-ai/DeepSeek-V4-Pro:together"]
    assert together.capabilities == ["tools", "structured-output", "input:text", "output:text"]
    novita = offers["deepseek-ai/DeepSeek-V4-Pro:novita"]  # supports_structured_output: false
    assert novita.capabilities == ["tools", "input:text", "output:text"]
    silent = offers["deepseek-ai/DeepSeek-V4-Pro:featherless-ai"]  # reports no flags
    assert silent.capabilities == ["input:text", "output:text"]
    assert type(provider.adapter()).page_url(novita.upstream_id) == (
        "https://huggingface.co/deepseek-ai/DeepSeek-V4-Pro"
    )

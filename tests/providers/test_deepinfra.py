from __future__ import annotations

import time
from decimal import Decimal

import pytest

from resilience import errors
from tests.conftest import by_id, payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def deepinfra(registry, serve):
    provider = registry["deepinfra"]
    server = serve(provider)
    return provider, server


def serve_catalog(server, models=None, openai=None):
    server.expect_request("/models/list").respond_with_json(
        payload("deepinfra/models_list.json") if models is None else models
    )
    server.expect_request("/v1/openai/models").respond_with_json(
        payload("deepinfra/openai_models.json") if openai is None else openai
    )


def test_it_converts_cents_per_token_to_usd_per_million(deepinfra):
    provider, server = deepinfra
    serve_catalog(server)
    offers = by_id(provider.adapter().list_models())
    llama = offers["meta-llama/Meta-Llama-3.1-8B-Instruct"]
    assert llama.usd_per_1m_input == Decimal("0.02")  # 2e-06 ¢/token
    assert llama.usd_per_1m_output == Decimal("0.05")
    assert (llama.task, llama.task_tag) == ("text", "text-generation")
    assert llama.price_source == "api"


def test_it_keeps_upstream_casing_and_lowercases_canonical_id(deepinfra):
    provider, server = deepinfra
    serve_catalog(server)
    llama = by_id(provider.adapter().list_models())["meta-llama/Meta-Llama-3.1-8B-Instruct"]
    assert llama.canonical_id == "meta-llama/meta-llama-3.1-8b-instruct"


def test_it_takes_context_length_from_the_openai_catalog(deepinfra):
    provider, server = deepinfra
    serve_catalog(server)
    offers = by_id(provider.adapter().list_models())
    assert offers["meta-llama/Meta-Llama-3.1-8B-Instruct"].context_length == 131072


def test_it_maps_embedding_image_and_audio_prices_honestly(deepinfra):
    provider, server = deepinfra
    serve_catalog(server)
    offers = by_id(provider.adapter().list_models())
    embedding = offers["BAAI/bge-m3"]
    assert embedding.task == "embedding"
    assert embedding.usd_per_1m_input is not None and embedding.usd_per_1m_output is None
    image = offers["stabilityai/sdxl-turbo"]
    assert image.task == "image" and image.usd_per_image is not None
    whisper = offers["openai/whisper-large-v3-turbo"]
    # Per-second audio pricing has no normalised unit: shown natively, never converted.
    assert whisper.usd_per_1m_input is None and "per input sec" in whisper.native_price


def test_it_marks_deprecated_models_unavailable(deepinfra):
    provider, server = deepinfra
    serve_catalog(server)
    offers = by_id(provider.adapter().list_models())
    assert offers["meta-llama/Meta-Llama-3-70B-Instruct"].available is False
    assert offers["meta-llama/Meta-Llama-3.1-70B-Instruct"].available is True


def test_it_skips_an_item_with_missing_fields_and_keeps_the_rest(deepinfra):
    provider, server = deepinfra
    models = payload("deepinfra/models_list.json")
    del models[0]["pricing"]
    serve_catalog(server, models=models)
    catalog = provider.adapter().list_models()
    assert catalog.skipped == 1
    assert len(catalog.offers) == len(models) - 1


def test_it_accepts_an_empty_catalog(deepinfra):
    provider, server = deepinfra
    serve_catalog(server, models=[], openai={"object": "list", "data": []})
    assert provider.adapter().list_models().offers == []


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, errors.InvalidKey),
        (403, errors.Forbidden),
        (404, errors.NotFound),
        (500, errors.Transient),
    ],
)
def test_it_maps_http_errors_to_typed_exceptions(deepinfra, status, error):
    provider, server = deepinfra
    server.expect_request("/models/list").respond_with_json(
        payload("deepinfra/error_401.json"), status=status
    )
    with pytest.raises(error) as raised:
        provider.adapter().list_models()
    assert raised.value.status == status


def test_it_reads_retry_after_on_429(deepinfra):
    provider, server = deepinfra
    server.expect_request("/models/list").respond_with_json(
        {"detail": "rate limited"}, status=429, headers={"Retry-After": "7"}
    )
    with pytest.raises(errors.RateLimited) as raised:
        provider.adapter().list_models()
    assert raised.value.retry_after == 7


def test_it_times_out_as_transient(deepinfra, settings):
    provider, server = deepinfra
    settings.DEEPINFRA_TIMEOUT = 0.2

    def slow(request):
        time.sleep(0.6)
        return payload("deepinfra/models_list.json")

    server.expect_request("/models/list").respond_with_handler(slow)
    with pytest.raises(errors.Transient, match="timed out"):
        provider.adapter().list_models()


def test_it_rejects_a_body_that_is_not_json(deepinfra):
    provider, server = deepinfra
    server.expect_request("/models/list").respond_with_data(
        "<html>maintenance</html>", content_type="text/html"
    )
    with pytest.raises(errors.BadPayload, match="did not return JSON"):
        provider.adapter().list_models()


def test_base_url_with_a_path_prefix_redirects_every_call(registry, httpserver, settings):
    settings.DEEPINFRA_BASE_URL = httpserver.url_for("/staging")
    httpserver.expect_request("/staging/models/list").respond_with_json([])
    httpserver.expect_request("/staging/v1/openai/models").respond_with_json({"data": []})
    assert registry["deepinfra"].adapter().list_models().offers == []


def test_authenticate_proves_a_key_with_the_account_call(deepinfra, settings):
    provider, server = deepinfra
    settings.DEEPINFRA_API_KEY = "di-test-key-1234"
    server.expect_request(
        "/v1/me", headers={"Authorization": "Bearer di-test-key-1234"}
    ).respond_with_json({"uid": "u-42"})
    assert provider.test_connection().status == "ok"


def test_chat_completion_passes_through(deepinfra, settings):
    provider, server = deepinfra
    settings.DEEPINFRA_API_KEY = "di-test-key-1234"
    server.expect_request("/v1/openai/chat/completions", method="POST").respond_with_json(
        {"choices": [{"message": {"content": "hi"}}], "usage": {"estimated_cost": 0.0000012}}
    )
    result = provider.adapter().run_inference({"model": "x", "messages": []})
    assert result["usage"]["estimated_cost"] == 0.0000012


def test_its_tags_say_which_models_take_tools_and_json_mode(deepinfra):
    provider, server = deepinfra
    serve_catalog(server)
    llama = by_id(provider.adapter().list_models())["meta-llama/Meta-Llama-3.1-8B-Instruct"]
    assert llama.capabilities == ["tools", "json-mode"]  # tags: openai, tools, json, …
    assert type(provider.adapter()).page_url(llama.upstream_id) == (
        "https://deepinfra.com/meta-llama/Meta-Llama-3.1-8B-Instruct"
    )

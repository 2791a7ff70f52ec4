"""Embeddings, the seeds' /api/v1/inference, the staff Usage page and the Prometheus
counters."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from werkzeug import Request, Response

from tests.broker.conftest import (
    EMBEDDING_MODEL,
    MODEL,
    PROVIDER_KEYS,
    chat,
    recorded,
    sent_to,
    serve_chat,
)
from tests.conftest import payload


def test_embeddings_go_to_deepinfras_openai_embeddings(sdk, world, httpserver):
    def answer(request: Request) -> Response:
        assert request.headers["Authorization"] == f"Bearer {PROVIDER_KEYS['deepinfra']}"
        assert request.get_json()["model"] == "BAAI/bge-large-en-v1.5"
        body = json.dumps(payload("deepinfra/embeddings.json"))
        return Response(body, content_type="application/json")

    httpserver.expect_request("/v1/openai/embeddings", method="POST").respond_with_handler(answer)
    raw = sdk.embeddings.with_raw_response.create(model=EMBEDDING_MODEL, input="hello")
    assert raw.parse().data[0].embedding == [0.0123, -0.0456, 0.0789, 0.0012]
    assert raw.headers["x-gpubroker-cost-usd"] == "0.00000005"
    assert [u.endpoint for u in recorded()] == ["embeddings"]


def test_a_chat_model_is_not_an_embedding_model(sdk, world):
    with pytest.raises(openai.NotFoundError):
        sdk.embeddings.create(model=MODEL, input="hello")


def test_inference_says_which_offer_served_it(broker_url, raw_key, world, httpserver):
    serve_chat(httpserver, "huggingface")
    answer = httpx.post(
        f"{broker_url}/api/v1/inference",
        json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]},
        headers={"Authorization": f"Bearer {raw_key}"},
    )
    assert answer.status_code == 200
    served = answer.json()["gpubroker"]
    assert served["provider"] == "huggingface"
    assert served["offer"] == world["huggingface"].pk
    assert served["upstream_model"] == "meta-llama/Llama-3.3-70B-Instruct:novita"
    assert (served["cost_source"], served["attempts"]) == ("prices", [])
    assert answer.json()["choices"][0]["message"]["content"].startswith("Hello")


def test_inference_answers_whole_even_when_the_body_asks_for_a_stream(
    broker_url, raw_key, world, httpserver
):
    serve_chat(httpserver, "huggingface")
    answer = httpx.post(
        f"{broker_url}/api/v1/inference",
        json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": True},
        headers={"Authorization": f"Bearer {raw_key}"},
    )
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["gpubroker"]["provider"] == "huggingface"
    assert sent_to(httpserver, "huggingface")[0]["stream"] is False


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/chat/completions", 405, "method_not_allowed"),
        ("GET", "/api/v1/auth", 405, "method_not_allowed"),
        ("POST", "/v1/models", 405, "method_not_allowed"),
        ("POST", "/v1/completions", 404, "unknown_url"),
    ],
)
def test_a_wrong_method_or_path_is_answered_in_openais_shape(
    broker_url, raw_key, method, path, status, code
):
    answer = httpx.request(
        method, broker_url + path, headers={"Authorization": f"Bearer {raw_key}"}
    )
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code


def test_the_usage_page_shows_spend_per_key_model_and_provider(
    sdk, world, httpserver, staff_client
):
    serve_chat(httpserver, "deepinfra")
    chat(sdk, extra_body={"provider": {"only": ["deepinfra"]}})
    recorded()
    page = staff_client.get("/usage/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Per key" in text and "tests" in text and MODEL in text and "deepinfra" in text
    assert "0.000003" in text  # $0.00000268, six places
    assert "<svg" in text
    # The one day with spend fills the chart (110 of 120 units); the other 29 draw nothing.
    assert text.count('height="110.0"') == 1 and text.count('height="0.0"') == 29


def test_the_usage_page_is_for_staff_only(client, db):
    assert client.get("/usage/").status_code == 302


def test_metrics_count_requests_tokens_cost_and_fallbacks(sdk, world, httpserver, staff_client):
    serve_chat(httpserver, "huggingface", status=503)
    serve_chat(httpserver, "deepinfra")
    chat(sdk)
    recorded()
    text = staff_client.get("/metrics").content.decode()
    labels = f'endpoint="chat",model="{MODEL}",outcome="ok",provider="deepinfra"'
    assert f"gpubroker_broker_requests_total{{{labels}}} 1.0" in text
    assert f"gpubroker_broker_completion_tokens_total{{{labels}}} 6.0" in text
    assert f"gpubroker_broker_cost_usd_total{{{labels}}} 2.68e-06" in text
    assert f'gpubroker_broker_fallbacks_total{{endpoint="chat",model="{MODEL}"}} 1.0' in text

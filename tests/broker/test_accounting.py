"""Accounting: one usage record per request, the cost from the provider's estimated_cost or
from tokens × stored prices (saying which), budgets checked before the call and spent
atomically."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import httpx
import openai
import pytest

from broker import accounting
from broker.models import ApiKey, hash_key
from tests.broker.conftest import MODEL, PROVIDER_KEYS, chat, recorded, serve_chat


def key_of(raw: str) -> ApiKey:
    return ApiKey.objects.get(hashed=hash_key(raw))


def test_the_cost_is_deepinfras_estimated_cost_where_given(sdk, raw_key, world, httpserver):
    serve_chat(httpserver, "deepinfra")
    raw = chat(sdk, extra_body={"provider": {"only": ["deepinfra"]}})
    assert raw.headers["x-gpubroker-cost-usd"] == "0.00000268"
    (usage,) = recorded()
    assert (usage.cost_usd, usage.cost_source) == (Decimal("0.00000268"), "provider")
    assert (usage.prompt_tokens, usage.completion_tokens, usage.outcome) == (14, 6, "ok")
    assert usage.model == MODEL and usage.upstream_model == "meta-llama/Llama-3.3-70B-Instruct"
    assert key_of(raw_key).spent_usd == Decimal("0.00000268")


def test_the_cost_is_tokens_times_stored_prices_otherwise(sdk, raw_key, world, httpserver):
    serve_chat(httpserver, "huggingface")
    raw = chat(sdk)
    # 14 prompt tokens × $0.135/1M + 9 completion tokens × $0.40/1M
    assert raw.headers["x-gpubroker-cost-usd"] == "0.00000549"
    (usage,) = recorded()
    assert (usage.cost_usd, usage.cost_source) == (Decimal("0.00000549"), "prices")
    assert usage.ttfb_ms > 0 and usage.total_ms >= usage.ttfb_ms
    assert key_of(raw_key).spent_this_month() == Decimal("0.00000549")


def test_a_spent_budget_is_a_402_before_any_call(broker_url, world, httpserver):
    serve_chat(httpserver, "huggingface")
    key, raw = ApiKey.issue("capped", Decimal("0.00001"))
    client = openai.OpenAI(base_url=f"{broker_url}/v1", api_key=raw, max_retries=0)
    chat(client)  # within budget
    recorded(1)
    key.settle(Decimal(0), Decimal("0.00001"), reserved=False)  # now spent
    with pytest.raises(openai.APIStatusError) as caught:
        chat(client)
    assert caught.value.status_code == 402
    assert caught.value.body["code"] == "insufficient_quota"
    assert len(httpserver.log) == 1
    assert [u.outcome for u in recorded(2)] == ["ok", "refused"]


def test_requests_in_flight_cannot_overspend_by_more_than_one_request(db):
    key, _ = ApiKey.issue("capped", Decimal("0.0003"))
    estimate = Decimal("0.0002")
    assert key.reserve(estimate)  # fits
    assert not key.reserve(estimate)  # would not fit beside the one in flight
    key.settle(estimate, Decimal("0.00025"), reserved=True)
    key.refresh_from_db()
    assert key.reserve(estimate)  # none in flight and budget left: one more may go
    assert not key.reserve(Decimal("0.00001"))
    key.settle(estimate, Decimal("0.0002"), reserved=True)
    key.refresh_from_db()
    assert (key.in_flight, key.reserved_usd, key.over_budget()) == (0, 0, True)
    assert not key.reserve(estimate)


def test_bad_json_is_a_400_in_openais_shape(broker_url, raw_key, db):
    for body in (b"{not json", b"[1, 2]"):
        answer = httpx.post(
            f"{broker_url}/v1/chat/completions",
            content=body,
            headers={"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"},
        )
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "invalid_json"


def test_an_upstream_4xx_is_the_clients_answer_and_no_fallback(sdk, world, httpserver, caplog):
    key = PROVIDER_KEYS["groq"]
    echo = {"error": {"message": f"bad request for key {key}", "type": "invalid_request_error"}}
    serve_chat(httpserver, "groq", status=400, body=echo)
    serve_chat(httpserver, "deepinfra")
    caplog.set_level(logging.INFO)
    with pytest.raises(openai.BadRequestError) as caught:
        chat(sdk, extra_body={"provider": {"order": ["groq"]}})
    body = json.dumps(caught.value.body)
    assert "bad request for key" in body
    assert key not in body and key not in caplog.text
    assert len(httpserver.log) == 1
    (usage,) = recorded()
    assert (usage.outcome, usage.status_code, usage.provider) == ("upstream_error", 400, "")
    assert key not in usage.error


def test_an_unknown_model_is_a_404_and_is_recorded(sdk, world):
    with pytest.raises(openai.NotFoundError):
        chat(sdk, model="nobody/nothing")
    assert [u.outcome for u in recorded()] == ["refused"]


def test_requests_recorded_together_each_count(broker_url, world, httpserver, settings):
    """Requests ending within one write of the recorder: a row each, their costs summed into
    the spend, their holds released, the offer's observation counting every one."""
    settings.BROKER_RECORD_SECONDS = 1  # every request below ends within one batch
    serve_chat(httpserver, "deepinfra")
    key, raw = ApiKey.issue("capped", Decimal("1"))
    client = openai.OpenAI(base_url=f"{broker_url}/v1", api_key=raw, max_retries=0)
    for _ in range(4):
        chat(client, extra_body={"provider": {"only": ["deepinfra"]}})
    rows = recorded(4)
    assert [u.cost_usd for u in rows] == [Decimal("0.00000268")] * 4
    key.refresh_from_db()
    assert (key.spent_usd, key.in_flight, key.reserved_usd) == (Decimal("0.00001072"), 0, 0)
    observed = world["deepinfra"].observation
    assert (observed.requests, observed.failures) == (4, 0)
    assert observed.latency_ms > 0 and observed.throughput_tps > 0


def test_a_batch_of_samples_moves_the_average_as_one_sample_at_a_time():
    samples = [120.0, 80.0, 95.5, 300.0]
    one_by_one = None
    for sample in samples:
        one_by_one = sample if one_by_one is None else one_by_one * 0.8 + sample * 0.2
    keep, added, fresh = accounting.smooth(samples)
    assert fresh == pytest.approx(one_by_one)
    from_100 = 100.0
    for sample in samples:
        from_100 = from_100 * 0.8 + sample * 0.2
    assert 100.0 * keep + added == pytest.approx(from_100)
    assert accounting.smooth([]) == (1.0, 0.0, None)  # unchanged

"""Accounting: one usage record per request, the cost from the provider's estimated_cost or
from tokens × stored prices (saying which), budgets checked before the call and spent
atomically."""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import openai
import pytest
from werkzeug import Request, Response

from broker import leases
from broker.models import ApiKey, hash_key
from tests.broker.conftest import (
    CHAT_PATHS,
    MODEL,
    PROVIDER_KEYS,
    chat,
    recorded,
    sent_to,
    serve_chat,
)
from tests.conftest import payload


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


ONE_REQUEST = Decimal("0.00000549")  # Hugging Face's answer: 14 × $0.135/1M + 9 × $0.40/1M


def spend_in_waves(broker_url: str, requests: int) -> tuple[ApiKey, Decimal, list[int]]:
    """A key with a budget of a little over `requests` requests, spent by waves of six
    requests at once, each asking at most 16 tokens, until a whole wave is refused: the key,
    its budget and every request's status."""
    budget = ONE_REQUEST * requests + Decimal("0.000001")
    key, raw = ApiKey.issue("capped", budget)
    client = openai.OpenAI(base_url=f"{broker_url}/v1", api_key=raw, max_retries=0)

    def one(_) -> int:
        try:
            return chat(client, max_tokens=16).http_response.status_code
        except openai.APIStatusError as exc:
            return exc.status_code

    answered = []
    with ThreadPoolExecutor(6) as pool:
        for _ in range(40):
            wave = list(pool.map(one, range(6)))
            assert set(wave) <= {200, 402}
            answered += wave
            if set(wave) == {402}:
                return key, budget, answered
    raise AssertionError(f"the key was never spent: {answered}")


def test_concurrent_requests_overspend_a_budget_by_at_most_one_request(
    broker_url, world, httpserver
):
    """Waves of six requests at once, each held 0.2 s by the provider, until the key is
    refused: the spend ends within one request of the budget. Each request asks for at most
    16 tokens, so its estimate (what it holds of the budget) bounds its cost."""

    def slow(request: Request) -> Response:
        time.sleep(0.2)
        return Response(json.dumps(payload("huggingface/chat_completion.json")),
                        content_type="application/json")  # fmt: skip

    httpserver.expect_request(CHAT_PATHS["huggingface"]).respond_with_handler(slow)
    key, budget, answered = spend_in_waves(broker_url, 5)
    served = answered.count(200)
    recorded(len(answered))  # every request's record and spend written
    key.refresh_from_db()
    assert key.spent_usd == served * ONE_REQUEST
    assert budget - ONE_REQUEST < key.spent_usd <= budget + ONE_REQUEST
    assert (key.in_flight, key.reserved_usd) == (0, 0)  # every hold released


def test_requests_recorded_together_each_count(broker_url, world, httpserver, settings):
    """Requests ending within one write of the recorder: a row each, their costs summed into
    the spend, their holds released."""
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


def test_a_budgeted_key_asking_no_max_tokens_gets_a_bounded_answer(
    broker_url, world, httpserver, settings
):
    """Without max_tokens an answer's cost has no bound, and requests in flight could each
    spend past what they held: a key with a budget gets BROKER_BUDGET_MAX_TOKENS upstream
    (said in a header), a key without one is sent the request as it came."""
    settings.BROKER_BUDGET_MAX_TOKENS = 300
    serve_chat(httpserver, "huggingface")
    _, capped = ApiKey.issue("capped", Decimal("1"))
    _, free = ApiKey.issue("free")
    for raw in (capped, free):
        with openai.OpenAI(base_url=f"{broker_url}/v1", api_key=raw, max_retries=0) as client:
            answer = chat(client)
    bounded, unbounded = sent_to(httpserver, "huggingface")
    assert bounded["max_tokens"] == 300 and "max_tokens" not in unbounded
    assert "x-gpubroker-max-tokens" not in answer.headers  # the free key's answer
    with openai.OpenAI(base_url=f"{broker_url}/v1", api_key=capped, max_retries=0) as client:
        assert chat(client).headers["x-gpubroker-max-tokens"] == "300"
        asked = chat(client, max_tokens=20)
    assert "x-gpubroker-max-tokens" not in asked.headers
    assert sent_to(httpserver, "huggingface")[-1]["max_tokens"] == 20


def test_a_request_holds_the_most_it_can_cost_at_any_candidate(broker_url, world, httpserver):
    """While a request is in flight its key holds its worst case: the prompt's bytes (a token
    is at least one byte) and its max_tokens at the dearest candidate, so a fallback to a
    dearer provider cannot spend past the hold either; the hold is released when it ends."""
    held = []

    def slow(request: Request) -> Response:
        held.append(ApiKey.objects.get(name="capped").reserved_usd)
        return Response(json.dumps(payload("huggingface/chat_completion.json")),
                        content_type="application/json")  # fmt: skip

    httpserver.expect_request(CHAT_PATHS["huggingface"]).respond_with_handler(slow)
    key, raw = ApiKey.issue("capped", Decimal("1"))
    messages = [{"role": "user", "content": "Hello"}]
    with openai.OpenAI(base_url=f"{broker_url}/v1", api_key=raw, max_retries=0) as client:
        chat(
            client,
            messages=messages,
            max_tokens=100,
            extra_body={"provider": {"only": ["huggingface"]}},
        )
    prompt_bytes = len(json.dumps(messages, ensure_ascii=False).encode())
    assert held == [(prompt_bytes * Decimal("0.135") + 100 * Decimal("0.40")) / 1_000_000]
    recorded(1)
    key.refresh_from_db()
    assert (key.in_flight, key.reserved_usd) == (0, 0)


def test_a_request_that_cannot_fit_beside_requests_in_flight_says_so(broker_url, world, httpserver):
    """A 402 refused for what others hold is not "budget spent": it says what the request
    could cost and how to get in (retry, or fewer max_tokens)."""
    serve_chat(httpserver, "huggingface")
    key, raw = ApiKey.issue("capped", Decimal("0.001"))
    key.reserve(Decimal("0.0009"))  # another request in flight holds most of it
    client = openai.OpenAI(base_url=f"{broker_url}/v1", api_key=raw, max_retries=0)
    with client, pytest.raises(openai.APIStatusError) as caught:
        chat(client, max_tokens=4000)
    assert caught.value.status_code == 402
    # 4,000 tokens at the dearest candidate's $0.79/1M output, and the prompt's bytes
    assert "could cost up to $0.00318" in caught.value.body["message"]
    assert "fewer `max_tokens`" in caught.value.body["message"]
    assert len(httpserver.log) == 0


def held_until_released(key: ApiKey, seconds: float = 5) -> tuple[int, Decimal]:
    """The key's holds (in flight, USD), once nothing is held or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    key.refresh_from_db()
    while (key.in_flight, key.reserved_usd) != (0, 0) and time.monotonic() < deadline:
        time.sleep(0.05)
        key.refresh_from_db()
    return key.in_flight, key.reserved_usd


def test_a_process_holds_its_requests_costs_from_one_lease_then_releases_it(
    broker_url, world, httpserver, settings
):
    """Where a process may remember for a while (BROKER_CACHE_SECONDS), its requests hold
    their costs from one lease of the key's budget: one hold in the database for all of
    them, not a round trip each. Once it has expired and their costs are written it is
    released: the spend is what they cost, nothing is held."""
    settings.BROKER_CACHE_SECONDS = 2
    serve_chat(httpserver, "deepinfra")
    key, raw = ApiKey.issue("capped", Decimal("1"))
    with openai.OpenAI(base_url=f"{broker_url}/v1", api_key=raw, max_retries=0) as client:
        for _ in range(4):
            chat(client, extra_body={"provider": {"only": ["deepinfra"]}})
    recorded(4)
    key.refresh_from_db()
    assert key.in_flight == 1  # the lease, shared by the four requests
    assert 0 < key.reserved_usd <= key.monthly_budget_usd / 8
    assert held_until_released(key) == (0, 0)
    assert key.spent_usd == Decimal("0.00001072")


def test_requests_holding_from_leases_overspend_by_at_most_one_request(
    broker_url, world, httpserver, settings
):
    """Waves of six requests at once until the key is refused, their holds taken from
    leases while a lease fits (a lease is at most 1/8 of what is left, and never takes the
    one-more-request allowance), then one by one: the spend ends within one request of the
    budget, and every hold is released."""
    settings.BROKER_CACHE_SECONDS = 1
    serve_chat(httpserver, "huggingface")
    key, budget, answered = spend_in_waves(broker_url, 60)
    served = answered.count(200)
    recorded(served)
    assert held_until_released(key) == (0, 0)
    assert key.spent_usd == served * ONE_REQUEST
    assert budget - ONE_REQUEST < key.spent_usd <= budget + ONE_REQUEST


def test_a_lease_is_reserved_only_where_it_fits(db):
    """A request may go alone when none is in flight and anything is left (it may overspend
    by itself); a lease, a share for many requests, is never granted that way."""
    key, _ = ApiKey.issue("capped", Decimal("1"))
    key.settle(Decimal(0), Decimal("0.95"), reserved=False)
    key.refresh_from_db()
    assert not key.reserve(Decimal("0.1"), lease=True)
    assert key.reserve(Decimal("0.1"))


def test_the_requests_of_a_lease_cannot_spend_more_than_it(db, settings):
    """Each request takes its estimate from the lease and gives back only what it did not
    spend: however many come, what they spend stays within what the lease reserved."""
    settings.BROKER_CACHE_SECONDS = 60
    key, _ = ApiKey.issue("capped", Decimal("1"))
    estimate, cost = Decimal("0.001"), Decimal("0.0006")
    lease = leases.hold(key, estimate)
    try:
        assert lease is not None and lease.amount == 32 * estimate  # BROKER_BUDGET_LEASE_REQUESTS
        spent = cost  # the first request, taken by hold()
        leases.give_back(lease, estimate, cost)
        for _ in range(1000):
            if not lease.take(estimate, time.monotonic()):
                break
            spent += cost
            leases.give_back(lease, estimate, cost)
        assert lease.amount - estimate < spent <= lease.amount  # 53 requests, not 32
    finally:
        leases.end()
        leases.released(leases.due())


def test_a_lease_used_up_before_it_expires_is_followed_by_a_larger_one(db, settings):
    """A process whose requests use up a lease within its time takes the next one for four
    times as many requests, so a busy key is not held back by a round trip every few
    requests; the one before is released once its requests have ended."""
    settings.BROKER_CACHE_SECONDS = 60
    key, _ = ApiKey.issue("capped", Decimal("100"))
    estimate = Decimal("0.001")
    try:
        first = leases.hold(key, estimate)
        while (lease := leases.hold(key, estimate)) is first:
            pass
        assert (first.amount, lease.amount) == (32 * estimate, 128 * estimate)
        key.refresh_from_db()
        assert (key.in_flight, key.reserved_usd) == (2, first.amount + lease.amount)
        assert leases.due() == []  # the first lease's 32 requests are still in flight
    finally:
        leases.end()
        leases.released(leases.due())

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from resilience import errors
from tests.conftest import payload

pytestmark = pytest.mark.django_db
KEY = "gsk_testkey0000000000000001"


@pytest.fixture
def groq(registry, serve, settings):
    settings.GROQ_API_KEY = KEY
    provider = registry["groq"]
    return provider, serve(provider)


def test_it_needs_a_key_and_says_so(registry, settings):
    settings.GROQ_API_KEY = ""
    with pytest.raises(errors.MissingKey, match="GROQ_API_KEY"):
        registry["groq"].adapter().list_models()


def test_it_prices_models_from_the_dated_sheet(groq):
    provider, server = groq
    server.expect_request(
        "/openai/v1/models", headers={"Authorization": f"Bearer {KEY}"}
    ).respond_with_json(payload("groq/models.json"))
    offers = {o.upstream_id: o for o in provider.adapter().list_models().offers}
    llama = offers["llama-3.1-8b-instant"]
    assert (llama.usd_per_1m_input, llama.usd_per_1m_output) == (Decimal("0.05"), Decimal("0.08"))
    assert llama.price_source == "sheet"
    assert llama.price_source_url == "https://groq.com/pricing"
    assert isinstance(llama.price_source_date, date)
    assert llama.context_length == 131072


def test_a_model_missing_from_the_sheet_has_an_unknown_price(groq):
    provider, server = groq
    server.expect_request("/openai/v1/models").respond_with_json(payload("groq/models.json"))
    whisper = {o.upstream_id: o for o in provider.adapter().list_models().offers}[
        "whisper-large-v3-turbo"
    ]
    assert whisper.usd_per_1m_input is None and whisper.usd_per_1m_output is None
    assert (whisper.task, whisper.task_tag) == ("speech-to-text", "automatic-speech-recognition")


def test_it_maps_an_invalid_key(groq):
    provider, server = groq
    server.expect_request("/openai/v1/models").respond_with_json(
        payload("groq/error_401.json"), status=401
    )
    with pytest.raises(errors.InvalidKey, match="Invalid API Key"):
        provider.adapter().list_models()
    assert provider.test_connection().status == "invalid key"


def test_it_reads_retry_after_on_429(groq):
    provider, server = groq
    server.expect_request("/openai/v1/models").respond_with_json(
        {
            "error": {
                "message": "Rate limit reached",
                "type": "requests",
                "code": "rate_limit_exceeded",
            }
        },
        status=429,
        headers={"retry-after": "2", "x-ratelimit-remaining-requests": "0"},
    )
    with pytest.raises(errors.RateLimited) as raised:
        provider.adapter().list_models()
    assert raised.value.retry_after == 2
    assert provider.test_connection().status == "rate limited"

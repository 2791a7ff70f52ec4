from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from providers.adapters.base import load_price_sheet
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
    # Each price names the dated copy it was read from (providers/price_sheets/groq.json).
    assert llama.price_source_url.startswith("https://github.com/anomalyco/models.dev/blob/")
    assert llama.price_source_date == date(2026, 7, 2)
    assert llama.context_length == 131072
    twenty = offers["openai/gpt-oss-20b"]
    assert (twenty.usd_per_1m_input, twenty.usd_per_1m_cached_input) == (
        Decimal("0.075"),
        Decimal("0.0375"),
    )


def test_every_model_in_the_recorded_list_has_a_sourced_sheet_entry():
    sheet = load_price_sheet("groq")
    listed = [m["id"] for m in payload("groq/models.json")["data"]]
    for model_id in listed:
        entry = sheet["models"][model_id]
        assert entry["source_url"].startswith("https://") and entry["source"], model_id
        assert "input" in entry or entry.get("native_price"), model_id


def test_groqs_shutdown_dates_and_replacements_are_shown(groq):
    provider, server = groq
    server.expect_request("/openai/v1/models").respond_with_json(payload("groq/models.json"))
    offers = {o.upstream_id: o for o in provider.adapter().list_models().offers}
    llama = offers["llama-3.3-70b-versatile"]
    assert llama.deprecated_at == datetime(2026, 8, 16, tzinfo=UTC)
    assert llama.replaced_by == "openai/gpt-oss-120b"
    assert offers["qwen/qwen3-32b"].deprecated_at == datetime(2026, 7, 17, tzinfo=UTC)
    kimi = offers["moonshotai/kimi-k2-instruct-0905"]
    assert kimi.deprecated_at == datetime(2026, 4, 15, tzinfo=UTC) and kimi.replaced_by == ""
    assert offers["openai/gpt-oss-120b"].deprecated_at is None
    # Availability stays the API's: Groq keeps serving these on committed-spend contracts.
    assert llama.available


def test_whisper_is_priced_per_audio_hour_as_groq_states_it(groq):
    provider, server = groq
    server.expect_request("/openai/v1/models").respond_with_json(payload("groq/models.json"))
    whisper = {o.upstream_id: o for o in provider.adapter().list_models().offers}[
        "whisper-large-v3-turbo"
    ]
    assert whisper.usd_per_1m_input is None and whisper.usd_per_1m_output is None
    assert whisper.native_price == "$0.04 per hour of audio"
    assert whisper.price_source_date is None  # no dated copy: the card says so
    assert (whisper.task, whisper.task_tag) == ("speech-to-text", "automatic-speech-recognition")


def test_a_model_missing_from_the_sheet_has_an_unknown_price(groq):
    provider, server = groq
    body = payload("groq/models.json")
    body["data"].append({**body["data"][0], "id": "some/new-model"})
    server.expect_request("/openai/v1/models").respond_with_json(body)
    new = {o.upstream_id: o for o in provider.adapter().list_models().offers}["some/new-model"]
    assert new.usd_per_1m_input is None and new.native_price == ""
    assert "price unknown" in new.price_note


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

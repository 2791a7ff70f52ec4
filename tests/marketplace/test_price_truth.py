"""Prices as a user reads them on cards and the health page: cached input, embeddings,
deprecated models, price sheets that age, unusual and impossible prices. Recorded payloads
(tests/payloads/SOURCES-*.md) go through the real adapters, poll and pages."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.utils import timezone

from providers.adapters.base import Catalog, OfferIn
from providers.models import Offer, PollRun
from providers.pipeline import drop_implausible, ingest, poll_provider
from tests.conftest import payload
from tests.marketplace.test_cards import card

pytestmark = pytest.mark.django_db


@pytest.fixture
def deepinfra_polled(registry, serve):
    server = serve(registry["deepinfra"])
    server.expect_request("/models/list").respond_with_json(payload("deepinfra/models_list.json"))
    server.expect_request("/v1/openai/models").respond_with_json(
        payload("deepinfra/openai_models.json")
    )
    assert poll_provider("deepinfra").outcome == "ok"
    return {o.upstream_id: o for o in Offer.objects.filter(provider=registry["deepinfra"])}


@pytest.fixture
def groq_polled(registry, serve, settings):
    settings.GROQ_API_KEY = "gsk_testkey0000000000000001"
    serve(registry["groq"]).expect_request("/openai/v1/models").respond_with_json(
        payload("groq/models.json")
    )
    assert poll_provider("groq").outcome == "ok"
    return {o.upstream_id: o for o in Offer.objects.filter(provider=registry["groq"])}


def test_deepinfra_cached_input_is_its_rate_times_the_input_price(deepinfra_polled, client):
    deepseek = deepinfra_polled["deepseek-ai/DeepSeek-V3.2"]  # 2.6e-05 ¢/token, rate 0.5
    assert deepseek.usd_per_1m_input == Decimal("0.26")
    assert deepseek.usd_per_1m_cached_input == Decimal("0.13")
    assert deepinfra_polled["moonshotai/Kimi-K2.5"].usd_per_1m_cached_input == Decimal("0.07")
    assert deepinfra_polled["google/gemma-3-27b-it"].usd_per_1m_cached_input is None  # null rate
    html = card(client.get("/"), "deepseek-ai/DeepSeek-V3.2")
    assert "<strong>$0.13</strong> cached input" in html


def test_groq_cached_input_comes_from_the_sheet(groq_polled, client):
    assert groq_polled["openai/gpt-oss-120b"].usd_per_1m_cached_input == Decimal("0.075")
    assert groq_polled["llama-3.1-8b-instant"].usd_per_1m_cached_input is None
    assert "<strong>$0.075</strong> cached input" in card(client.get("/"), "openai/gpt-oss-120b")


def test_a_deprecated_model_says_so_and_links_its_replacement(deepinfra_polled, client):
    old = deepinfra_polled["meta-llama/Meta-Llama-3-70B-Instruct"]  # deprecated 1757621725
    assert old.deprecated_at == timezone.datetime(2025, 9, 11, 20, 15, 25, tzinfo=timezone.UTC)
    assert old.replaced_by == "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo"
    assert not old.available
    html = client.get(f"/offers/{old.pk}/").content.decode()
    assert "Deprecated by the provider since 2025-09-11; replaced by <a href=" in html
    assert "?q=meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo&amp;unavailable=1" in html


def test_an_embedding_card_shows_the_input_price_only(registry, client, world):
    html = card(client.get("/"), "BAAI/bge-m3")
    assert "<strong>$0.01</strong> in" in html and "embeddings have no output tokens" in html
    assert "output price unknown" not in html


def test_a_sheet_price_says_how_old_the_sheet_is_and_the_health_page_lists_it(
    groq_polled, client, staff_client
):
    # qwen3-32b's price comes from a copy dated 2026-07-02, Kimi's (the oldest) from 2026-06-10.
    age = (timezone.localdate() - date(2026, 7, 2)).days
    assert age > 90  # these tests run after 2026-09-30
    html = card(client.get("/"), "qwen/qwen3-32b")
    assert "read 2026-07-02" in html and f"price sheet is {age} days old" in html
    oldest = (timezone.localdate() - date(2026, 6, 10)).days
    health = staff_client.get("/health/").content.decode()
    assert f"oldest price read 2026-06-10, {oldest} days ago" in health
    assert '<span class="badge stale">stale</span>' in health


def test_a_model_groq_retires_says_so_and_links_its_replacement(groq_polled, client):
    llama = groq_polled["llama-3.3-70b-versatile"]
    html = client.get(f"/offers/{llama.pk}/").content.decode()
    assert "Deprecated by the provider since 2026-08-16; replaced by <a href=" in html
    assert "?q=openai/gpt-oss-120b&amp;unavailable=1" in html


def test_a_price_without_a_dated_copy_says_its_date_is_unknown(groq_polled, client):
    html = card(client.get("/"), "whisper-large-v3-turbo")
    assert "$0.04 per hour of audio" in html and "read on an unknown date" in html


def test_impossible_prices_are_skipped_and_counted_as_bad_items(registry):
    catalog = Catalog(
        offers=[
            OfferIn("ok", "ok", "llm-inference", usd_per_1m_input=Decimal("0.5")),
            OfferIn("neg", "neg", "llm-inference", usd_per_1m_input=Decimal("-0.1")),
            OfferIn("nan", "nan", "llm-inference", usd_per_1m_output=Decimal("NaN")),
            OfferIn("huge", "huge", "llm-inference", usd_per_1m_input=Decimal("1000")),
            OfferIn("gpu", "gpu", "gpu-compute", usd_per_gpu_hour=Decimal("1500")),
        ]
    )
    drop_implausible("deepinfra", catalog)
    assert [o.upstream_id for o in catalog.offers] == ["ok"] and catalog.skipped == 4


def test_a_poll_with_an_impossible_price_is_partial(registry, serve):
    body = payload("deepinfra/models_list.json")
    body[0]["pricing"]["cents_per_input_token"] = -0.00001
    server = serve(registry["deepinfra"])
    server.expect_request("/models/list").respond_with_json(body)
    server.expect_request("/v1/openai/models").respond_with_json(
        payload("deepinfra/openai_models.json")
    )
    run = poll_provider("deepinfra")
    assert (run.outcome, run.items_skipped) == (PollRun.Outcome.PARTIAL, 1)
    assert not Offer.objects.filter(upstream_id=body[0]["model_name"]).exists()


def test_unmatched_gpu_spellings_are_listed_on_the_health_page_with_counts(registry, staff_client):
    offers = [
        OfferIn(
            f"k80-{i}", "K80", "gpu-compute", gpu_name="Tesla K80", usd_per_gpu_hour=Decimal("0.1")
        )
        for i in range(3)
    ]
    ingest(registry["vastai"], Catalog(offers=offers))
    section = staff_client.get("/health/").content.decode().split('id="unmatched-gpus"')[1]
    assert "<td>Vast.ai</td><td><code>Tesla K80</code></td><td>3</td>" in section

from __future__ import annotations

import re
from datetime import timedelta
from itertools import pairwise

import pytest
from django.db.models import F
from django.utils import timezone

from providers.adapters.base import load_price_sheet
from providers.models import Offer, Provider
from providers.pipeline import poll_provider
from tests.conftest import payload
from tests.marketplace.conftest import days_ago, gpu, llm, names, publish, usd

pytestmark = pytest.mark.django_db


def card(response, title: str) -> str:
    """The HTML of the card with this title."""
    body = response.content.decode()
    start = body.index(f">{title}</a></h2>")
    return body[body.rindex("<article", 0, start) : body.index("</article>", start)]


def test_it_lists_offers_on_the_home_page_and_under_marketplace(client, world):
    for url in ("/", "/marketplace/"):
        response = client.get(url)
        assert response.status_code == 200
        assert "meta-llama/Llama-3.3-70B-Instruct" in names(response)
        assert "8× H100 SXM 80GB" in names(response)


def test_an_llm_card_shows_model_provider_task_context_throughput_and_token_prices(client, world):
    html = card(client.get("/"), "meta-llama/Llama-3.3-70B-Instruct")
    assert "DeepInfra" in html and "· us" in html
    assert '<span class="chip">text</span>' in html
    assert "131,072 tokens" in html
    assert "55 tokens/s" in html
    assert "<strong>$0.23</strong> in" in html and "<strong>$0.40</strong> out" in html
    assert "per 1M tokens" in html


def test_it_names_the_serving_provider_behind_a_router(client, world):
    assert "Hugging Face via together" in card(client.get("/"), "Qwen/Qwen3-32B")


def test_an_image_model_is_priced_per_image(client, world):
    html = card(client.get("/"), "black-forest-labs/FLUX-1-schnell")
    assert "<strong>$0.0005</strong> <small>per image</small>" in html


def test_a_price_in_the_providers_own_unit_is_shown_as_stated(client, world):
    html = card(client.get("/"), "openai/whisper-large-v3")
    assert "$0.00045 per sec" in html and "the provider's own unit" in html


def test_an_unknown_price_says_so_and_is_never_zero(client, world):
    html = card(client.get("/"), "mistralai/Mistral-7B")
    assert "price unknown" in html
    assert "$0" not in html


def test_an_unknown_price_sorts_after_known_ones(client, world):
    listed = names(client.get("/?sort=price"))
    assert listed.index("mistralai/Mistral-7B") > listed.index("8× H100 SXM 80GB")


def test_a_gpu_card_shows_gpu_count_vram_hourly_prices_place_and_availability(client, world):
    html = card(client.get("/"), "8× H100 SXM 80GB")
    assert "GPU Cloud · Texas, US (US)" in html
    assert "<strong>$2.10</strong> <small>per GPU-hour</small>" in html
    assert "<strong>$16.80</strong> <small>per instance-hour</small>" in html
    assert "80 GB each" in html
    assert "<dt>Available</dt><dd>3</dd>" in html
    assert "99.2%" in html and "on-demand" in html


def test_a_market_range_is_shown_as_a_range_with_how_it_is_made(client, world):
    html = card(client.get("/"), "1× A100 PCIe 40GB")
    assert "$0.80–$1.40" in html and "market range" in html
    assert "Range of recent on-chain bids." in html


def test_a_gpu_card_shows_the_g_score_with_an_explanation(client, world):
    Provider.objects.update(gscore_reference=200.0)
    Offer.objects.filter(gpu_name="RTX 4090").update(gscore_value=174.8)  # 87.4 on that scale
    html = card(client.get("/"), "1× RTX 4090")
    assert "G-Score 87" in html
    assert 'title="G-Score: GPU compute per dollar' in html


def test_every_card_says_its_price_comes_from_the_api(client, world):
    html = card(client.get("/"), "BAAI/bge-m3")
    assert 'Price: <a href="https://deepinfra.com/docs" rel="noopener">API</a>' in html


def test_a_price_from_a_price_sheet_shows_the_sheet_and_its_date(client, registry, serve, settings):
    settings.GROQ_API_KEY = "gsk_testkey0000000000000001"
    serve(registry["groq"]).expect_request("/openai/v1/models").respond_with_json(
        payload("groq/models.json")
    )
    assert poll_provider("groq").outcome == "ok"
    html = card(client.get("/"), "llama-3.1-8b-instant")
    # The dated copy the price was read from (providers/price_sheets/groq.json), and its date.
    copy = load_price_sheet("groq")["models"]["llama-3.1-8b-instant"]["source_url"]
    assert f'Price: <a href="{copy}" rel="noopener">price sheet</a>, read 2026-07-02' in html
    assert "<strong>$0.05</strong> in" in html


def test_it_says_how_fresh_each_price_is(client, registry):
    publish(
        registry["deepinfra"],
        llm("a/model", usd_per_1m_input=usd("1")),
        at=timezone.now() - timedelta(minutes=3),
    )
    assert "updated 3\xa0minutes ago" in card(client.get("/"), "a/model")


def test_a_provider_not_refreshed_for_twice_its_poll_interval_is_marked_stale(client, registry):
    deepinfra = registry["deepinfra"]  # polled every 300 s
    publish(
        deepinfra,
        llm("a/model", usd_per_1m_input=usd("1")),
        at=timezone.now() - timedelta(seconds=2 * 300 + 60),
    )
    publish(registry["huggingface"], llm("b/model", usd_per_1m_input=usd("1")))
    response = client.get("/")
    assert '<span class="badge stale"' in card(response, "a/model")
    assert '<span class="badge stale"' not in card(response, "b/model")


def test_unavailable_offers_are_hidden_unless_asked_for(client, world):
    publish(
        world["gpucloud"],
        gpu("1002", "RTX 4090", vram_gb=24.0, usd_per_gpu_hour=usd("0.35"), region="Norway"),
    )
    assert "8× H100 SXM 80GB" not in names(client.get("/"))
    response = client.get("/?unavailable=1")
    assert '<span class="badge gone">unavailable</span>' in card(response, "8× H100 SXM 80GB")


def test_provider_text_is_escaped(client, registry, gpu_cloud):
    Provider.objects.filter(pk=gpu_cloud.pk).update(name="<script>alert(1)</script>Cloud")
    publish(
        gpu_cloud,
        gpu(
            "x",
            "<img src=x onerror=alert(2)>",
            usd_per_gpu_hour=usd("1"),
            price_note="<b>bold</b>",
            region="<i>r</i>",
        ),
    )
    body = client.get("/").content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;Cloud" in body
    assert "<img src=x" not in body and "<b>bold</b>" not in body and "<i>r</i>" not in body


def test_each_card_draws_its_price_history(client, registry):
    deepinfra = registry["deepinfra"]
    publish(deepinfra, llm("a/model", usd_per_1m_input=usd("1.00")), at=days_ago(3))
    publish(deepinfra, llm("a/model", usd_per_1m_input=usd("0.80")), at=days_ago(2))
    publish(deepinfra, llm("a/model", usd_per_1m_input=usd("0.60")))
    html = card(client.get("/"), "a/model")
    assert '<svg class="spark"' in html
    assert "USD per 1M input tokens: 2 changes since" in html
    assert "between $0.60 and $1.00" in html


def test_a_price_drop_draws_a_line_that_steps_down(client, registry):
    deepinfra = registry["deepinfra"]
    publish(deepinfra, llm("a/model", usd_per_1m_input=usd("1.00")), at=days_ago(4))
    publish(deepinfra, llm("a/model", usd_per_1m_input=usd("0.50")), at=days_ago(2))
    points = re.search(r'<polyline points="([^"]+)"', card(client.get("/"), "a/model")).group(1)
    xy = [tuple(map(float, p.split(","))) for p in points.split()]
    assert xy[0][1] < xy[-1][1]  # SVG y grows downwards: the line ends lower
    step = next(x for (x, y), (_, y2) in pairwise(xy) if y2 != y)
    assert 55 < step < 65  # halfway between first sight and now


def test_the_offer_page_shows_every_field_and_the_whole_history(client, registry):
    deepinfra = registry["deepinfra"]
    publish(
        deepinfra,
        llm("a/model", usd_per_1m_input=usd("1.00"), usd_per_1m_output=usd("2")),
        at=days_ago(3),
    )
    publish(deepinfra, llm("a/model", usd_per_1m_input=usd("0.80"), usd_per_1m_output=usd("3")))
    offer = Offer.objects.get(upstream_id="a/model")
    body = client.get(f"/offers/{offer.pk}/").content.decode()
    assert "<dt>upstream id</dt><dd>a/model</dd>" in body
    assert "<dt>context length</dt><dd>131,072</dd>" in body
    assert "<dt>provider</dt><dd>DeepInfra</dd>" in body
    assert "facet key" not in body and "\x1f" not in body  # a lookup column, not a field
    assert "<td>USD per 1M input tokens</td><td>$1.00</td><td>$0.80</td>" in body
    assert "<td>USD per 1M output tokens</td><td>$2.00</td><td>$3.00</td>" in body
    assert body.count('<svg class="spark big"') == 2


def test_an_unknown_offer_is_a_404(client, db):
    assert client.get("/offers/999999/").status_code == 404


def test_a_gpu_offer_page_shows_its_card_and_hardware_fields(client, world):
    offer = Offer.objects.get(gpu_name="H100 SXM 80GB")
    body = client.get(f"/offers/{offer.pk}/").content.decode()
    assert "<strong>$16.80</strong> <small>per instance-hour</small>" in body
    assert "<dt>gpu count</dt><dd>8</dd>" in body
    assert "<dt>reliability</dt><dd>99.2%</dd>" in body


def test_the_offer_page_rounds_measured_numbers_and_keeps_the_stored_ones(client, gpu_cloud):
    publish(
        gpu_cloud,
        gpu(
            "2001",
            "H100 SXM 80GB",
            vram_gb=79.64745,
            ram_gb=257.9999,
            disk_gb=1024.0,
            vcpus=31.5,
            reliability=0.9912345,
            benchmark_score=1234.56789,
            availability_count=12345,
            usd_per_gpu_hour=usd("2.100000"),
            usd_per_instance_hour=usd("0.000150"),
        ),
    )
    offer = Offer.objects.get()
    body = client.get(f"/offers/{offer.pk}/").content.decode()
    for shown in (
        "<dt>vram gb</dt><dd>79.6</dd>",
        "<dt>ram gb</dt><dd>258</dd>",
        "<dt>disk gb</dt><dd>1,024</dd>",
        "<dt>vcpus</dt><dd>31.5</dd>",
        "<dt>reliability</dt><dd>99.1%</dd>",
        "<dt>benchmark score</dt><dd>1,234.6</dd>",
        "<dt>availability count</dt><dd>12,345</dd>",
        "<dt>usd per gpu hour</dt><dd>$2.10</dd>",
        "<dt>usd per instance hour</dt><dd>$0.00015</dd>",
    ):
        assert shown in body
    for raw in ("79.64745", "257.9999", "0.9912345", "1234.56789", "12345<", "2.100000"):
        assert raw not in body
    offer.refresh_from_db()  # display only: the stored figures keep every digit
    assert (offer.vram_gb, offer.reliability) == (79.64745, 0.9912345)


def test_the_offer_page_rounds_throughput_and_latency(client, registry):
    publish(
        registry["deepinfra"],
        llm("a/model", throughput_tps=24.69124008437934, latency_ms=312.4567),
    )
    offer = Offer.objects.get()
    body = client.get(f"/offers/{offer.pk}/").content.decode()
    assert "<dt>throughput tps</dt><dd>24.7</dd>" in body
    assert "<dt>latency ms</dt><dd>312</dd>" in body
    assert "24.69124008437934" not in body and "312.4567" not in body
    assert "25 tokens/s" in body and "312 ms" in body  # the card above, as on the grid


def test_an_akash_card_shows_the_bid_range_with_its_median(client, recorded_world):
    akash = Offer.objects.filter(provider__slug="akash", usd_per_gpu_hour_min__isnull=False)
    offer = akash.exclude(usd_per_gpu_hour_min=F("usd_per_gpu_hour_max")).first()
    html = client.get(f"/offers/{offer.pk}/").content.decode()
    low, high = f"${offer.usd_per_gpu_hour_min:.2f}", f"${offer.usd_per_gpu_hour_max:.2f}"
    assert f"<strong>{low}–{high}</strong>" in html
    assert "market range (median $" in html


def test_a_price_that_never_moved_draws_no_line(client, registry):
    deepinfra = registry["deepinfra"]
    publish(deepinfra, llm("a/model", usd_per_1m_input=usd("1.00")), at=days_ago(3))
    publish(deepinfra, llm("a/model", usd_per_1m_input=usd("1.00")))
    html = card(client.get("/"), "a/model")
    assert "<svg" not in html and "no change" not in html
    offer = Offer.objects.get(upstream_id="a/model")
    body = client.get(f"/offers/{offer.pk}/").content.decode()
    assert '<svg class="spark' not in body
    assert "No price change since GPUBroker first saw this offer" in body
    assert "No price in a unit GPUBroker converts" not in body


def test_llm_cards_show_what_the_provider_reports_and_link_to_it(client, recorded_world):
    html = card(
        client.get("/?q=DeepSeek-V4-Pro&provider=huggingface"), "deepseek-ai/DeepSeek-V4-Pro"
    )
    assert '<span class="tag cap">tool calling</span>' in html
    assert "<dt>Modalities</dt><dd>text → text</dd>" in html
    assert (
        '<a class="go" href="https://huggingface.co/deepseek-ai/DeepSeek-V4-Pro" rel="noopener"'
        in html
    )
    groq = card(client.get("/?provider=groq&q=llama-3.1-8b-instant"), "llama-3.1-8b-instant")
    assert "tag cap" not in groq and "Modalities" not in groq  # Groq's payload says nothing
    assert '<a class="go" href="https://console.groq.com"' in groq


def test_every_gpu_offer_links_to_where_it_is_rented(client, recorded_world):
    body = client.get("/?provider=vastai").content.decode()
    link = '<a class="go" href="https://cloud.vast.ai" rel="noopener" target="_blank">'
    assert body.count('<article class="card offer gpu') == body.count(f"{link}Rent at Vast.ai ↗")

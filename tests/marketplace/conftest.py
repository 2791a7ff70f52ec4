"""A tiny marketplace world: the registry's providers plus one GPU cloud, and offers that
reach the database the way a poll puts them there, through `providers.pipeline.ingest`."""

from __future__ import annotations

import html
import re
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from providers.adapters.base import Catalog, OfferIn
from providers.models import Kind, Offer, Provider
from providers.pipeline import ingest, poll_provider
from tests.conftest import payload


def llm(upstream_id: str, **fields) -> OfferIn:
    defaults = {"name": upstream_id, "task": "text-generation", "context_length": 131072}
    return OfferIn(upstream_id=upstream_id, kind=Kind.LLM, **defaults | fields)


def gpu(upstream_id: str, gpu_name: str, **fields) -> OfferIn:
    defaults = {"name": f"{gpu_name} #{upstream_id}", "gpu_count": 1, "vram_gb": 80.0}
    defaults |= {"region": "US", "country": "US"}
    return OfferIn(upstream_id=upstream_id, kind=Kind.GPU, gpu_name=gpu_name, **defaults | fields)


def publish(provider: Provider, *offers: OfferIn, at: datetime | None = None) -> list[Offer]:
    """What a successful poll does: ingest the provider's whole catalog, mark it fresh."""
    at = at or timezone.now()
    ingest(provider, Catalog(offers=list(offers)), now=at)
    Provider.objects.filter(pk=provider.pk).update(last_polled_at=at, last_success_at=at)
    provider.refresh_from_db()
    return list(Offer.objects.filter(provider=provider).order_by("id"))


def usd(value: str) -> Decimal:
    return Decimal(value)


@pytest.fixture
def gpu_cloud(db, settings) -> Provider:
    """A GPU provider whose offers a test writes itself (the real GPU providers' recorded
    offers are in `recorded_world`)."""
    settings.GPUCLOUD_ENABLED = True
    settings.GPUCLOUD_API_KEY = ""
    return Provider.objects.create(
        slug="gpucloud",
        name="GPU Cloud",
        kind=Kind.GPU,
        adapter_path="providers.adapters.base.ProviderAdapter",
        env_prefix="GPUCLOUD",
        base_url="https://gpucloud.invalid",
        docs_url="https://gpucloud.invalid/docs",
        poll_interval=600,
    )


@pytest.fixture
def world(registry, gpu_cloud) -> dict[str, Provider]:
    """DeepInfra and Hugging Face with LLM offers, GPU Cloud with GPUs; Groq has no key."""
    publish(
        registry["deepinfra"],
        llm(
            "meta-llama/Llama-3.3-70B-Instruct",
            region="us",
            usd_per_1m_input=usd("0.23"),
            usd_per_1m_output=usd("0.40"),
            throughput_tps=55.0,
        ),
        llm(
            "BAAI/bge-m3",
            region="us",
            task="embedding",
            context_length=8192,
            usd_per_1m_input=usd("0.01"),
        ),
        llm(
            "black-forest-labs/FLUX-1-schnell",
            region="us",
            task="image",
            context_length=None,
            usd_per_image=usd("0.0005"),
        ),
        llm(
            "openai/whisper-large-v3",
            region="us",
            task="audio",
            context_length=None,
            native_price="$0.00045 per sec",
        ),
    )
    publish(
        registry["huggingface"],
        llm(
            "Qwen/Qwen3-32B:together",
            name="Qwen/Qwen3-32B",
            serving_provider="together",
            context_length=40960,
            usd_per_1m_input=usd("0.80"),
            usd_per_1m_output=usd("0.80"),
            throughput_tps=88.0,
        ),
        llm(
            "mistralai/Mistral-7B:novita",
            name="mistralai/Mistral-7B",
            serving_provider="novita",
            context_length=32768,
        ),
    )
    publish(
        gpu_cloud,
        gpu(
            "1001",
            "H100 SXM 80GB",
            gpu_count=8,
            usd_per_gpu_hour=usd("2.10"),
            usd_per_instance_hour=usd("16.80"),
            region="Texas, US",
            availability_count=3,
            reliability=0.992,
            interruptible=False,
        ),
        gpu(
            "1002",
            "RTX 4090",
            vram_gb=24.0,
            usd_per_gpu_hour=usd("0.35"),
            usd_per_instance_hour=usd("0.35"),
            region="Norway",
            country="NO",
        ),
        gpu(
            "1003",
            "A100 PCIe 40GB",
            vram_gb=40.0,
            usd_per_gpu_hour_min=usd("0.80"),
            usd_per_gpu_hour_max=usd("1.40"),
            region="EU",
            country="",
            availability_count=12,
            price_note="Range of recent on-chain bids.",
        ),
    )
    return {**registry, "gpucloud": gpu_cloud}


def days_ago(n: float) -> datetime:
    return timezone.now() - timedelta(days=n)


SHEET_DATE = date(2026, 6, 23)


def names(response) -> list[str]:
    """The offer cards' titles, in page order."""
    found = re.findall(r'<h2><a href="/offers/\d+/">(.*?)</a></h2>', response.content.decode())
    return [html.unescape(name) for name in found]


def facet_count(response, facet: str, value: str) -> int:
    """The count printed beside one filter option on a full page."""
    pattern = (
        rf'name="{facet}" value="{re.escape(html.escape(value))}"[^>]*>\s*[^<]*'
        r'<span class="n" id="[^"]+">([\d,]+)</span>'
    )
    found = re.search(pattern, response.content.decode())
    assert found, f"no option {facet}={value}"
    return int(found.group(1).replace(",", ""))


@pytest.fixture
def recorded_world(registry, serve, settings) -> dict[str, Provider]:
    """The recorded provider payloads in tests/payloads, polled through the real adapters,
    HTTP client and pipeline: what the marketplace shows after a first round of polls."""
    settings.GROQ_API_KEY = "gsk_recorded0000000000000001"  # Groq lists models only with a key
    settings.IONET_API_KEY = "io-recorded-key-0001"  # so does io.net
    server = serve(registry["deepinfra"])
    serve(registry["huggingface"], "HUB_URL")
    for slug in ("groq", "vastai", "ionet", "akash", "render"):
        serve(registry[slug])
    server.expect_request("/models/list").respond_with_json(payload("deepinfra/models_list.json"))
    server.expect_request("/v1/openai/models").respond_with_json(
        payload("deepinfra/openai_models.json")
    )
    server.expect_request("/v1/models").respond_with_json(payload("huggingface/router_models.json"))
    server.expect_request("/api/models").respond_with_json(
        payload("huggingface/hub_models_page1.json")
    )
    server.expect_request("/openai/v1/models").respond_with_json(payload("groq/models.json"))
    server.expect_request("/api/v0/bundles/").respond_with_json(payload("vastai/bundles.json"))
    server.expect_request("/enterprise/v1/io-cloud/vmaas/hardware").respond_with_json(
        payload("ionet/hardware.json")
    )
    server.expect_request("/v1/gpu-prices").respond_with_json(payload("akash/gpu_prices.json"))
    for slug in ("deepinfra", "huggingface", "groq", "vastai", "ionet", "akash", "render"):
        assert poll_provider(slug).outcome in ("ok", "partial"), slug
    return registry

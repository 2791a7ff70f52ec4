"""The broker served for real: uvicorn on a loopback port running the ASGI app, the three LLM
providers answering on a loopback server in their own wire formats, and the official OpenAI
SDK as the client."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal

import openai
import pytest
from django.utils import timezone
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from broker import accounting, database
from broker.models import ApiKey, Usage
from gpubroker.asgi import application
from providers.llm_models import load_model_aliases
from providers.models import LlmModel, Offer, Provider
from tests.conftest import PAYLOADS, payload, served

MODEL = "meta-llama/llama-3.3-70b-instruct"
EMBEDDING_MODEL = "baai/bge-large-en-v1.5"
PROVIDER_KEYS = {
    "deepinfra": "di_providerkey000000000001",
    "groq": "gsk_providerkey00000000000002",
    "huggingface": "hf_providerkey000000000000003",
}
CHAT_PATHS = {
    "deepinfra": "/v1/openai/chat/completions",
    "groq": "/openai/v1/chat/completions",
    "huggingface": "/v1/chat/completions",
}


@pytest.fixture(autouse=True)
def _fresh_lookups(settings):
    """Every request asks the database (the tests change keys and offers between requests)."""
    settings.BROKER_CACHE_SECONDS = 0


def recorded(count: int = 1) -> list[Usage]:
    """The usage rows, once `count` are there: an answered request is recorded just after
    its answer has gone."""
    deadline = time.monotonic() + 5
    while Usage.objects.count() < count and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.05)  # the counters in the shared store follow the row's commit
    return list(Usage.objects.order_by("at"))


@pytest.fixture
def broker_url(transactional_db) -> str:
    """The ASGI app under uvicorn in a thread, on a free loopback port. The server's threads
    open their own database connections, so the tests commit (transactional_db)."""
    with served(application) as url:
        yield url
    accounting.RECORDER.flush()  # what the last requests left to record
    database.close()  # the broker's threads hand their connections back


def offer(provider: Provider, upstream_id: str, canonical: str, usd_in, usd_out, **fields) -> Offer:
    """An LLM offer of the catalog's model `canonical` (created when new), as an ingest leaves
    it (providers.llm_models.identify)."""
    now = timezone.now()
    model, _ = LlmModel.objects.get_or_create(
        canonical=canonical,
        defaults={
            "display_name": fields.pop("display_name", canonical),
            "identity": "unknown" if ":" in canonical else "repo-id",  # `<slug>:<name>`
        },
    )
    return Offer.objects.create(
        llm_model=model,
        provider=provider,
        upstream_id=upstream_id,
        canonical_id=canonical,
        name=upstream_id,
        kind="llm-inference",
        task=fields.pop("task", "text-generation"),
        usd_per_1m_input=Decimal(usd_in) if usd_in is not None else None,
        usd_per_1m_output=Decimal(usd_out) if usd_out is not None else None,
        first_seen=now - timedelta(days=1),
        last_seen=now,
        **fields,
    )


@pytest.fixture
def world(registry, httpserver: HTTPServer, settings) -> dict[str, Offer]:
    """One model at three providers, cheapest at Hugging Face (novita), then DeepInfra, then
    Groq, and an embedding model at DeepInfra; every provider's base URL on the loopback server
    and a key of its own. The catalog's alias table is loaded (providers/model_aliases.json),
    so Groq's `llama-3.3-70b-versatile` is the model's offer there, as a poll makes it."""
    origin = httpserver.url_for("").rstrip("/")
    for slug, key in PROVIDER_KEYS.items():
        prefix = registry[slug].env_prefix
        setattr(settings, f"{prefix}_BASE_URL", origin)
        setattr(settings, f"{prefix}_API_KEY", key)
    settings.PROVIDER_MAX_RETRIES = 0
    load_model_aliases()
    return {
        "huggingface": offer(
            registry["huggingface"], "meta-llama/Llama-3.3-70B-Instruct:novita", MODEL,
            "0.135", "0.40", serving_provider="novita",
            display_name="meta-llama/Llama-3.3-70B-Instruct",
        ),
        "deepinfra": offer(
            registry["deepinfra"], "meta-llama/Llama-3.3-70B-Instruct", MODEL, "0.23", "0.40"
        ),
        "groq": offer(registry["groq"], "llama-3.3-70b-versatile", MODEL, "0.59", "0.79"),
        "embedding": offer(
            registry["deepinfra"], "BAAI/bge-large-en-v1.5", EMBEDDING_MODEL, "0.01", None,
            task="embedding",
        ),
    }  # fmt: skip


@pytest.fixture
def raw_key(transactional_db) -> str:
    return ApiKey.issue("tests")[1]


@pytest.fixture
def sdk(broker_url, raw_key) -> openai.OpenAI:
    client = openai.OpenAI(base_url=f"{broker_url}/v1", api_key=raw_key, max_retries=0)
    yield client
    client.close()


def serve_chat(server: HTTPServer, slug: str, status: int = 200, body=None) -> None:
    """A provider's chat endpoint answering in its recorded format (JSON or the SSE stream,
    whichever the request asks for), only to the broker's own key for that provider."""

    def answer(request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {PROVIDER_KEYS[slug]}":
            return Response('{"error": {"message": "Invalid API key"}}', 401)
        if status != 200:
            return Response(json.dumps(body or {"error": {"message": "boom"}}), status,
                            content_type="application/json")  # fmt: skip
        if request.get_json().get("stream"):
            return Response(recorded_stream(slug), content_type="text/event-stream")
        return Response(json.dumps(body or payload(f"{slug}/chat_completion.json")),
                        content_type="application/json")  # fmt: skip

    server.expect_request(CHAT_PATHS[slug], method="POST").respond_with_handler(answer)


def recorded_stream(slug: str) -> str:
    return (PAYLOADS / slug / "chat_stream.sse").read_text()


def sent_to(server: HTTPServer, slug: str) -> list[dict]:
    """The JSON bodies the broker sent to a provider's chat endpoint."""
    return [json.loads(r.data) for r, _ in server.log if r.path == CHAT_PATHS[slug]]


def chat(client: openai.OpenAI, **kwargs):
    kwargs.setdefault("model", MODEL)
    kwargs.setdefault("messages", [{"role": "user", "content": "Hello"}])
    return client.chat.completions.with_raw_response.create(**kwargs)

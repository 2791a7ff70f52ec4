"""One model, many providers: offers polled from the recorded payloads meet on one canonical
model when the providers name the same weights, and only then."""

from __future__ import annotations

import logging

from providers.models import Identity, LlmModel, ModelAlias, Offer, PollRun
from providers.pipeline import poll_provider
from providers.registry import load_registry


def providers_of(canonical: str) -> set[str]:
    model = LlmModel.objects.get(canonical=canonical)
    return set(model.offers.values_list("provider__slug", flat=True))


def test_a_model_three_providers_serve_is_one_model_with_their_offers(recorded_world):
    model = LlmModel.objects.get(canonical="openai/gpt-oss-120b")
    assert model.display_name == "openai/gpt-oss-120b"
    assert providers_of("openai/gpt-oss-120b") == {"deepinfra", "huggingface", "groq"}
    # DeepInfra's one offer, the router's seven serving providers, Groq's one.
    assert model.offers.count() == 9


def test_groqs_alias_joins_the_model_the_router_serves(recorded_world):
    groq = Offer.objects.get(provider__slug="groq", upstream_id="llama-3.3-70b-versatile")
    assert groq.llm_model.canonical == "meta-llama/llama-3.3-70b-instruct"
    assert groq.canonical_id == "meta-llama/llama-3.3-70b-instruct"
    assert groq.llm_model.display_name == "meta-llama/Llama-3.3-70B-Instruct"
    assert providers_of("meta-llama/llama-3.3-70b-instruct") == {"huggingface", "groq"}


def test_groqs_sourced_aliases_name_the_weights_and_unsourced_names_stay_apart(recorded_world):
    identified = {
        o.upstream_id: o.llm_model.canonical
        for o in Offer.objects.filter(provider__slug="groq").select_related("llm_model")
    }
    assert identified["openai/gpt-oss-20b"] == "openai/gpt-oss-20b"
    assert identified["qwen/qwen3-32b"] == "qwen/qwen3-32b"
    assert identified["moonshotai/kimi-k2-instruct-0905"] == "moonshotai/kimi-k2-instruct-0905"
    # No Groq or Hugging Face page found says which weights these serve.
    assert identified["whisper-large-v3-turbo"] == "groq:whisper-large-v3-turbo"


def test_every_alias_shipped_cites_its_source(registry):
    aliases = ModelAlias.objects.all()
    assert aliases and all(a.source.startswith("https://") and a.from_file for a in aliases)


def test_an_unknown_name_stays_its_own_model_and_is_counted(recorded_world, caplog):
    instant = Offer.objects.get(provider__slug="groq", upstream_id="llama-3.1-8b-instant")
    assert instant.llm_model.canonical == "groq:llama-3.1-8b-instant"
    assert instant.llm_model.identity == Identity.UNKNOWN
    assert instant.llm_model.display_name == "llama-3.1-8b-instant"
    # Not guessed into the router's Llama 3.1 8B, which stays a model of its own.
    assert "groq" not in providers_of("meta-llama/llama-3.1-8b-instruct")
    run = PollRun.objects.filter(provider__slug="groq").first()
    assert run.models_unknown == 2  # eight Groq models, six identified by an alias
    with caplog.at_level(logging.WARNING, logger="providers.llm_models"):
        poll_provider("groq")
    assert "groq: 2 offers name a model no alias identifies" in caplog.text
    assert "'llama-3.1-8b-instant' ×1" in caplog.text


def test_a_repo_id_provider_is_matched_case_folded(recorded_world):
    gemma = LlmModel.objects.get(canonical="google/gemma-3-27b-it")
    assert gemma.identity == Identity.REPO_ID
    assert providers_of("google/gemma-3-27b-it") == {"deepinfra", "huggingface"}
    assert gemma.task == "text"


def test_an_alias_added_in_admin_survives_a_reload_and_moves_the_offers(
    recorded_world, admin_client
):
    response = admin_client.post(
        "/admin/providers/modelalias/add/",
        {
            "provider": recorded_world["groq"].pk,
            "name": "llama-3.1-8b-instant",
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "source": "https://example.org/groq-says-so",
            "note": "",
        },
    )
    assert response.status_code == 302, response.content
    load_registry()
    assert ModelAlias.objects.filter(name="llama-3.1-8b-instant", from_file=False).exists()
    poll_provider("groq")
    assert "groq" in providers_of("meta-llama/llama-3.1-8b-instruct")
    run = PollRun.objects.filter(provider__slug="groq").first()
    assert run.models_unknown == 1  # whisper-large-v3-turbo is left


def test_admin_lists_models_with_their_offer_counts(recorded_world, admin_client):
    response = admin_client.get("/admin/providers/llmmodel/?identity=unknown")
    assert response.status_code == 200
    assert "groq:llama-3.1-8b-instant" in response.content.decode()

"""A request names a model as the catalog knows it: its canonical id in any casing, an alias
(Groq's own names), or a provider's own id; the catalog resolves it to one model
(providers.llm_models.resolve, as the model pages do), whose offers are the candidates, each
called with its provider's own id in its exact casing. GET /v1/models lists the catalog's
canonical models."""

from __future__ import annotations

import openai
import pytest

from providers.llm_models import resolve
from providers.models import LlmModel
from tests.broker.conftest import MODEL, chat, offer, recorded, sent_to, serve_chat

GROQ_ID = "llama-3.3-70b-versatile"


def test_a_groq_alias_is_the_model_at_every_provider(sdk, world, httpserver):
    serve_chat(httpserver, "huggingface")
    raw = chat(sdk, model=GROQ_ID)  # Groq's own name; the cheapest offer of the model serves
    assert raw.headers["x-gpubroker-provider"] == "huggingface"
    (sent,) = sent_to(httpserver, "huggingface")
    assert sent["model"] == "meta-llama/Llama-3.3-70B-Instruct:novita"
    (usage,) = recorded()
    assert usage.model == MODEL


def test_an_alias_in_any_casing_sends_groq_its_own_id_exactly(sdk, world, httpserver):
    serve_chat(httpserver, "groq")
    raw = chat(sdk, model="Llama-3.3-70B-Versatile", extra_body={"provider": {"only": ["groq"]}})
    assert raw.headers["x-gpubroker-provider"] == "groq"
    assert sent_to(httpserver, "groq")[0]["model"] == GROQ_ID


def test_the_canonical_id_in_the_authors_casing_is_the_same_model(sdk, world, httpserver):
    serve_chat(httpserver, "deepinfra")
    chat(
        sdk,
        model="meta-llama/Llama-3.3-70B-Instruct",
        extra_body={"provider": {"only": ["deepinfra"]}},
    )
    assert sent_to(httpserver, "deepinfra")[0]["model"] == "meta-llama/Llama-3.3-70B-Instruct"
    assert recorded()[0].model == MODEL


def test_a_providers_own_id_names_its_model(sdk, world, httpserver):
    serve_chat(httpserver, "deepinfra")
    raw = chat(
        sdk,
        model="meta-llama/Llama-3.3-70B-Instruct:novita",  # the Hugging Face router's id
        extra_body={"provider": {"ignore": ["huggingface"]}},
    )
    assert raw.headers["x-gpubroker-provider"] == "deepinfra"


def test_a_name_no_alias_identifies_is_its_own_model(sdk, registry, world, httpserver):
    offer(registry["groq"], "llama-3.1-8b-instant", "groq:llama-3.1-8b-instant", "0.05", "0.08")
    serve_chat(httpserver, "groq")
    raw = chat(sdk, model="llama-3.1-8b-instant")
    assert raw.headers["x-gpubroker-provider"] == "groq"
    assert sent_to(httpserver, "groq")[0]["model"] == "llama-3.1-8b-instant"
    assert recorded()[0].model == "groq:llama-3.1-8b-instant"


def test_a_name_the_catalog_does_not_know_is_a_404_in_openais_shape(sdk, world):
    with pytest.raises(openai.NotFoundError) as caught:
        chat(sdk, model="llama-3.3-70b")  # a search term, not a name
    assert caught.value.body["code"] == "model_not_found"
    assert caught.value.body["param"] == "model"


def test_models_lists_the_catalogs_canonical_models(sdk, registry, world):
    offer(registry["groq"], "llama-3.1-8b-instant", "groq:llama-3.1-8b-instant", "0.05", "0.08")
    LlmModel.objects.create(canonical="nobody/unsold", display_name="nobody/Unsold")
    listed = {m.id: m for m in sdk.models.list()}
    assert set(listed) == {MODEL, "baai/bge-large-en-v1.5", "groq:llama-3.1-8b-instant"}
    llama = listed[MODEL]
    assert (llama.object, llama.owned_by) == ("model", "meta-llama")
    assert llama.model_extra["name"] == "meta-llama/Llama-3.3-70B-Instruct"
    assert llama.model_extra["providers"] == ["deepinfra", "groq", "huggingface"]
    assert listed["groq:llama-3.1-8b-instant"].owned_by == "groq"


def test_the_catalog_resolves_each_kind_of_name_to_one_model(world):
    model = LlmModel.objects.get(canonical=MODEL)
    names = [
        MODEL,
        MODEL.upper(),
        GROQ_ID,
        GROQ_ID.upper(),
        "meta-llama/Llama-3.3-70B-Instruct:novita",
    ]
    assert [resolve(name) for name in names] == [model] * len(names)
    assert resolve("meta-llama/Llama-3.3-70B-Instruct:NOVITA") is None  # a provider id is exact
    assert resolve("") is None and resolve("nobody/nothing") is None


def test_a_model_is_retrieved_by_any_name_a_request_may_use(sdk, world):
    model = sdk.models.retrieve(GROQ_ID)
    assert (model.id, model.object, model.owned_by) == (MODEL, "model", "meta-llama")
    assert sdk.models.retrieve(MODEL).model_extra["providers"] == [
        "deepinfra",
        "groq",
        "huggingface",
    ]
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.models.retrieve("nobody/nothing")
    assert caught.value.body["code"] == "model_not_found"

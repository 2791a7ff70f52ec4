"""Broker keys: `gpb_…`, only a hash stored, printed once by create_api_key, revocable,
limited to models and providers; checked by /api/v1/auth."""

from __future__ import annotations

import io

import httpx
import openai
import pytest
from django.core.management import call_command

from broker.models import ApiKey, hash_key
from tests.broker.conftest import MODEL, chat, serve_chat


def create_key(*args: str) -> tuple[str, str]:
    out = io.StringIO()
    call_command("create_api_key", *args, stdout=out)
    return out.getvalue(), out.getvalue().strip().splitlines()[-1]


def test_create_api_key_prints_the_key_once_as_its_last_line(db):
    output, raw = create_key("alice", "--budget-usd", "12.50")
    assert raw.startswith("gpb_") and len(raw) > 40
    assert output.count(raw) == 1
    key = ApiKey.objects.get()
    assert (key.name, key.monthly_budget_usd) == ("alice", 12.5)
    assert key.hashed == hash_key(raw)
    stored = [str(v) for v in ApiKey.objects.values().get().values()]
    assert not any(raw in value for value in stored)  # only the hash and a short prefix


def test_auth_says_whose_key_it_is_and_what_is_left(broker_url, db):
    _, raw = create_key("bob", "--budget-usd", "5")
    answer = httpx.post(f"{broker_url}/api/v1/auth", headers={"Authorization": f"Bearer {raw}"})
    assert answer.status_code == 200
    assert answer.json() | {"prefix": None} == {
        "name": "bob", "prefix": None, "budget_usd": 5.0, "budget_left_usd": 5.0,
        "spent_this_month_usd": 0.0, "expires_at": None, "allowed_models": [],
        "allowed_providers": [], "strategy": "price",
    }  # fmt: skip


def test_a_revoked_key_is_refused(sdk, raw_key, world, httpserver):
    serve_chat(httpserver, "huggingface")
    chat(sdk)
    ApiKey.objects.get(hashed=hash_key(raw_key)).revoke()
    with pytest.raises(openai.AuthenticationError) as caught:
        chat(sdk)
    assert caught.value.body["code"] == "revoked_key"
    assert len(httpserver.log) == 1


@pytest.mark.parametrize(
    ("authorization", "code"),
    [("", "missing_key"), ("Bearer gpb_nope", "invalid_api_key"), ("Basic abc", "missing_key")],
)
def test_a_missing_or_unknown_key_is_a_401_in_openais_shape(broker_url, db, authorization, code):
    answer = httpx.post(
        f"{broker_url}/v1/chat/completions",
        json={"model": MODEL, "messages": []},
        headers={"Authorization": authorization} if authorization else {},
    )
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert (error["code"], error["type"]) == (code, "authentication_error")


def test_a_key_limited_to_other_models_or_providers_cannot_use_them(broker_url, world, httpserver):
    serve_chat(httpserver, "deepinfra")
    _, only_embeddings = create_key("e", "--models", "baai/bge-large-en-v1.5")
    client = openai.OpenAI(base_url=f"{broker_url}/v1", api_key=only_embeddings, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        chat(client)
    _, only_deepinfra = create_key("d", "--providers", "deepinfra")
    client = openai.OpenAI(base_url=f"{broker_url}/v1", api_key=only_deepinfra, max_retries=0)
    assert chat(client).headers["x-gpubroker-provider"] == "deepinfra"


def test_a_key_limited_to_a_model_named_by_its_alias_may_use_it(broker_url, world, httpserver):
    serve_chat(httpserver, "groq")
    _, raw = create_key("g", "--models", "llama-3.3-70b-versatile")
    assert ApiKey.objects.get().allowed_models == [MODEL]
    client = openai.OpenAI(base_url=f"{broker_url}/v1", api_key=raw, max_retries=0)
    raw_answer = chat(
        client, model="llama-3.3-70b-versatile", extra_body={"provider": {"only": ["groq"]}}
    )
    assert raw_answer.headers["x-gpubroker-provider"] == "groq"

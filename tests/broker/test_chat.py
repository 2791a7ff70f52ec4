"""Chat completions through the broker, driven by the OpenAI SDK: the same answer as the
provider's, streamed chunk by chunk, with the provider's own model id and the broker's key."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest
from werkzeug import Request, Response

from tests.broker.conftest import (
    CHAT_PATHS,
    MODEL,
    PROVIDER_KEYS,
    chat,
    recorded,
    recorded_stream,
    sent_to,
    serve_chat,
)
from tests.conftest import payload


def test_it_answers_a_chat_completion_from_the_cheapest_provider(sdk, world, httpserver):
    serve_chat(httpserver, "huggingface")
    raw = chat(sdk)
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello from the Hugging Face router."
    assert completion.usage.completion_tokens == 9
    assert raw.headers["x-gpubroker-provider"] == "huggingface"
    assert raw.headers["x-gpubroker-offer"] == str(world["huggingface"].pk)
    assert raw.headers["x-gpubroker-attempts"] == "1"


def test_it_sends_the_providers_own_model_id_and_its_own_key(sdk, raw_key, world, httpserver):
    serve_chat(httpserver, "deepinfra")
    chat(sdk, extra_body={"provider": {"only": ["deepinfra"]}})
    (sent,) = sent_to(httpserver, "deepinfra")
    assert sent["model"] == "meta-llama/Llama-3.3-70B-Instruct"  # exact casing
    assert "provider" not in sent
    (request, _) = httpserver.log[0]
    assert request.headers["Authorization"] == f"Bearer {PROVIDER_KEYS['deepinfra']}"
    assert raw_key not in request.get_data(as_text=True)
    assert raw_key not in str(dict(request.headers))


def test_it_streams_the_providers_events_and_ends_with_done(sdk, world, httpserver):
    serve_chat(httpserver, "deepinfra")
    stream = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hello"}],
        stream=True,
        extra_body={"provider": {"only": ["deepinfra"]}},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello from DeepInfra."
    assert sent_to(httpserver, "deepinfra")[0]["stream_options"] == {"include_usage": True}


def test_the_raw_stream_is_the_providers_bytes_plus_nothing(broker_url, raw_key, world, httpserver):
    """Event for event what Groq sent, except the usage event the broker asked for and the
    client did not, and a comment with the cost before `data: [DONE]`, which comes last."""
    serve_chat(httpserver, "groq")
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": True,
            "provider": {"only": ["groq"]}}  # fmt: skip
    with httpx.stream("POST", f"{broker_url}/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {raw_key}"}) as response:  # fmt: skip
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-gpubroker-provider"] == "groq"
        received = response.read().decode()
    events = [e for e in recorded_stream("groq").split("\n\n") if e]
    usage_only = [e for e in events if '"choices":[]' in e]
    passed = "".join(e + "\n\n" for e in events if e not in usage_only)
    # 14 prompt tokens × $0.59/1M + 5 completion tokens × $0.79/1M, as an SSE comment
    cost = ": x-gpubroker-cost-usd 0.00001221\n\n"
    assert received == passed.replace("data: [DONE]", cost + "data: [DONE]")
    assert received.endswith("data: [DONE]\n\n")


def test_the_first_chunk_reaches_the_client_before_the_provider_has_finished(
    sdk, world, httpserver
):
    release = threading.Event()
    first_seen_while_held: list[bool] = []

    def slow(request: Request) -> Response:
        events = [e + "\n\n" for e in recorded_stream("deepinfra").split("\n\n") if e]

        def body():
            yield events[0]
            yield events[1]
            release.wait(10)  # the rest only once the client has seen the first chunk
            yield from events[2:]

        return Response(body(), content_type="text/event-stream")

    httpserver.expect_request(CHAT_PATHS["deepinfra"]).respond_with_handler(slow)
    stream = sdk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True,
        extra_body={"provider": {"only": ["deepinfra"]}},
    )  # fmt: skip
    started = time.monotonic()
    chunks = []
    for chunk in stream:
        if not chunks:
            first_seen_while_held.append(not release.is_set())
            release.set()
        chunks.append(chunk)
    assert first_seen_while_held == [True]
    assert time.monotonic() - started < 5  # not a timeout of the held stream
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Hello from DeepInfra."
    )


def test_it_passes_the_usage_chunk_on_when_the_client_asks(sdk, world, httpserver):
    serve_chat(httpserver, "deepinfra")
    chunks = list(
        sdk.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True,
            stream_options={"include_usage": True},
            extra_body={"provider": {"only": ["deepinfra"]}},
        )
    )  # fmt: skip
    assert chunks[-1].usage.total_tokens == 20


def test_models_lists_the_canonical_models(sdk, world):
    ids = {m.id: m for m in sdk.models.list()}
    assert set(ids) == {MODEL, "baai/bge-large-en-v1.5"}
    assert sorted(ids[MODEL].model_extra["providers"]) == ["deepinfra", "groq", "huggingface"]


def test_a_stream_is_recorded_once_with_its_usage(sdk, world, httpserver):
    serve_chat(httpserver, "groq")
    list(chat(sdk, stream=True, extra_body={"provider": {"only": ["groq"]}}).parse())
    (usage,) = recorded()
    assert (usage.provider, usage.stream, usage.outcome) == ("groq", True, "ok")
    assert (usage.prompt_tokens, usage.completion_tokens) == (14, 5)
    assert usage.ttfb_ms is not None and usage.total_ms >= usage.ttfb_ms


def test_the_groq_answer_is_passed_on_unchanged(sdk, world, httpserver):
    serve_chat(httpserver, "groq")
    raw = chat(sdk, extra_body={"provider": {"order": ["groq"]}})
    assert json.loads(raw.http_response.text) == payload("groq/chat_completion.json")


def test_an_sdk_error_is_raised_for_a_missing_model(sdk, world):
    with pytest.raises(openai.NotFoundError) as caught:
        chat(sdk, model="no-such/model")
    assert caught.value.body["code"] == "model_not_found"


def test_a_client_hanging_up_mid_stream_is_recorded_as_gone(broker_url, raw_key, world, httpserver):
    release = threading.Event()

    def held(request: Request) -> Response:
        events = [e + "\n\n" for e in recorded_stream("deepinfra").split("\n\n") if e]

        def body():
            yield events[0]
            release.wait(10)  # the rest only after the client has gone
            yield from events[1:]

        return Response(body(), content_type="text/event-stream")

    httpserver.expect_request(CHAT_PATHS["deepinfra"]).respond_with_handler(held)
    request = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": True,
               "provider": {"only": ["deepinfra"]}}  # fmt: skip
    headers = {"Authorization": f"Bearer {raw_key}"}
    with httpx.stream(
        "POST", f"{broker_url}/v1/chat/completions", json=request, headers=headers
    ) as r:
        assert next(r.iter_raw()).startswith(b"data: ")
    time.sleep(0.5)  # the broker notices the hang-up while the provider still holds the rest
    release.set()
    (usage,) = recorded()
    assert (usage.outcome, usage.status_code, usage.provider) == ("client_gone", 499, "deepinfra")


def test_a_runaway_answer_is_refused_not_held(sdk, world, httpserver, settings):
    """A provider's answer over PROVIDER_MAX_RESPONSE_BYTES is a 502 saying so, not memory."""
    settings.PROVIDER_MAX_RESPONSE_BYTES = 4096
    huge = json.dumps({"choices": [{"message": {"content": "x" * 100_000}}]})

    def chunked(request: Request) -> Response:  # no Content-Length: only reading tells
        return Response(iter([huge[i : i + 1000] for i in range(0, len(huge), 1000)]),
                        content_type="application/json")  # fmt: skip

    httpserver.expect_request(CHAT_PATHS["huggingface"]).respond_with_handler(chunked)
    with pytest.raises(openai.APIStatusError) as caught:
        chat(sdk)
    assert caught.value.status_code == 502
    assert "larger than PROVIDER_MAX_RESPONSE_BYTES" in caught.value.body["message"]
    assert [u.outcome for u in recorded()] == ["stream_error"]


def test_a_stream_event_that_never_ends_is_cut_off(sdk, world, httpserver, settings):
    settings.PROVIDER_MAX_RESPONSE_BYTES = 4096

    def endless(request: Request) -> Response:
        first = recorded_stream("huggingface").split("\n\n")[0] + "\n\n"
        return Response(
            iter([first] + ["data: " + "x" * 1000] * 50), content_type="text/event-stream"
        )

    httpserver.expect_request(CHAT_PATHS["huggingface"]).respond_with_handler(endless)
    stream = chat(sdk, stream=True).parse()
    received = []
    with pytest.raises(openai.APIError, match="larger than PROVIDER_MAX_RESPONSE_BYTES"):
        for chunk in stream:
            received.append(chunk)
    assert received[0].choices[0].delta.content == "Hello"
    assert [u.outcome for u in recorded()] == ["stream_error"]

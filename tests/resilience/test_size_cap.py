"""PROVIDER_MAX_RESPONSE_BYTES: an answer is read as a stream and never past the cap."""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest
from werkzeug import Response

from resilience import aio, errors
from tests.conftest import MODELS, PATH, get

pytestmark = pytest.mark.django_db
MB = 1024 * 1024


@pytest.fixture
def capped(settings, groq_server):
    settings.PROVIDER_MAX_RESPONSE_BYTES = 1 * MB
    return groq_server


def streamed(total: int, sent: list[int], chunk: int = 64 * 1024):
    """A chunked answer (no Content-Length) of `total` bytes, counting what was handed over."""

    def body():
        yield b'{"data": "'
        while sent[0] < total:
            sent[0] += chunk
            yield b"x" * chunk
        yield b'"}'

    return lambda request: Response(body(), content_type="application/json")


def test_an_answer_declaring_more_than_the_cap_is_refused_unread(capped, groq_client):
    capped.expect_request(PATH).respond_with_data(b"x" * (5 * MB), content_type="application/json")
    with pytest.raises(errors.BadPayload) as refused:
        get(groq_client)
    assert "larger than PROVIDER_MAX_RESPONSE_BYTES (1.0 MB): it declares 5.0 MB" in str(
        refused.value
    )


def test_a_streamed_answer_is_cut_off_at_the_cap_not_read_to_its_end(capped, groq_client):
    sent = [0]
    capped.expect_request(PATH).respond_with_handler(streamed(50 * MB, sent))
    with pytest.raises(errors.BadPayload, match=r"cut off after reading 1\.[01] MB"):
        get(groq_client)
    # What left the server: the cap plus what loopback's socket buffers held, not 50 MB.
    assert sent[0] < 20 * MB, sent[0]


def test_the_cap_counts_decoded_bytes_so_a_gzip_bomb_is_refused(capped, groq_client):
    bomb = gzip.compress(b'{"data": "' + b"0" * (20 * MB) + b'"}')
    assert len(bomb) < MB
    capped.expect_request(PATH).respond_with_data(
        bomb, content_type="application/json", headers={"Content-Encoding": "gzip"}
    )
    with pytest.raises(errors.BadPayload, match="cut off"):
        get(groq_client)


def test_an_answer_within_the_cap_is_read_whole(capped, settings, groq_client):
    body = json.dumps(MODELS).encode()
    settings.PROVIDER_MAX_RESPONSE_BYTES = len(body)
    capped.expect_request(PATH).respond_with_data(body, content_type="application/json")
    assert get(groq_client).json() == MODELS


def test_a_huge_error_answer_is_still_the_error_it_says(capped, groq_client):
    capped.expect_request(PATH).respond_with_data(
        json.dumps({"error": "overloaded", "pad": "x" * (5 * MB)}), status=503
    )
    with pytest.raises(errors.Transient, match="HTTP 503"):
        get(groq_client)


def test_the_async_call_reads_only_the_start_of_an_error_answer(capped, groq_client):
    sent = [0]

    def error(request) -> Response:
        answer = streamed(50 * MB, sent)(request)
        answer.status_code = 503
        return answer

    capped.expect_request(PATH).respond_with_handler(error)
    with pytest.raises(errors.Transient, match="HTTP 503"):
        asyncio.run(aio.open_stream(groq_client.policy, "GET", PATH))
    assert sent[0] < 20 * MB, sent[0]

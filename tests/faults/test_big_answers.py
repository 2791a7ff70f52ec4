"""A provider answering far more than any real catalog: a 50 MB body, a million offers. The
worker reads at most PROVIDER_MAX_RESPONSE_BYTES of it, the poll fails with BadPayload saying
so, the last good snapshot stays, ops read why on the health page, and the worker lives on."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from celery import Celery
from werkzeug import Request, Response

from providers.models import PollRun
from tests.conftest import payload
from tests.faults.conftest import peak_rss, pool_children, wait_until
from tests.providers.test_pipeline import snapshot

pytestmark = pytest.mark.slow
MB = 1024 * 1024
RECORDED = payload("deepinfra/models_list.json")


def catalog_stream(models: int, sent: list[int]) -> Callable[[Request], Response]:
    """DeepInfra's /models/list with `models` models (the recorded ones, renamed copies after
    them), generated while it is sent, chunked (no Content-Length); `sent` counts the bytes
    handed to the socket."""

    def body():
        yield b"["
        for start in range(0, models, 1000):
            batch = (
                json.dumps(RECORDED[i % len(RECORDED)] | {"model_name": f"faults/model-{i}"})
                for i in range(start, min(start + 1000, models))
            )
            chunk = (("," if start else "") + ",".join(batch)).encode()
            sent[0] += len(chunk)
            yield chunk
        yield b"]"

    return lambda request: Response(body(), content_type="application/json")


@pytest.fixture
def deepinfra_served(registry, serve):
    server = serve(registry["deepinfra"])
    server.expect_request("/v1/openai/models").respond_with_json(
        payload("deepinfra/openai_models.json")
    )
    return server


def serve_models(server, **respond) -> None:
    server.clear()
    server.expect_request("/v1/openai/models").respond_with_json(
        payload("deepinfra/openai_models.json")
    )
    handler = server.expect_request("/models/list")
    if "handler" in respond:
        handler.respond_with_handler(respond["handler"])
    else:
        handler.respond_with_data(**respond)


def polled_once_by_the_worker(stack, server, **env: str):
    """The stack with DeepInfra's recorded catalog polled by the worker's start-up catch-up
    poll (which also warms the pool process up): the snapshot a fault must not lose."""
    serve_models(server, handler=lambda r: Response(json.dumps(RECORDED), 200))
    built = stack("deepinfra")
    built.env |= env
    worker = built.worker()
    wait_until(lambda: PollRun.objects.filter(outcome="ok").exists(), 60, "the first poll")
    (child,) = pool_children(worker.pid)
    return built, child, snapshot()


def poll_again(own_redis) -> PollRun:
    done = set(PollRun.objects.exclude(outcome="running").values_list("pk", flat=True))
    Celery(broker=own_redis.url).send_task("providers.tasks.poll_provider", args=["deepinfra"])

    def finished() -> PollRun | None:
        return PollRun.objects.exclude(outcome="running").exclude(pk__in=done).first()

    wait_until(finished, 120, "the poll ended")
    return finished()


def test_a_50_mb_answer_is_cut_off_at_the_cap_and_the_last_snapshot_stays(
    stack, own_redis, deepinfra_served, staff
):
    cap = 4 * MB
    built, child, before = polled_once_by_the_worker(
        stack, deepinfra_served, PROVIDER_MAX_RESPONSE_BYTES=str(cap)
    )
    built.web()
    peak_before = peak_rss(child)

    sent = [0]  # chunked: nothing says how big it is until it has been read
    serve_models(deepinfra_served, handler=catalog_stream(50 * MB // 550, sent))
    run = poll_again(own_redis)
    assert (run.outcome, run.error_class) == ("failed", "BadPayload"), run.error_message
    assert "larger than PROVIDER_MAX_RESPONSE_BYTES (4.0 MB): cut off" in run.error_message
    assert sent[0] < 25 * MB, sent[0]  # the cap and loopback's socket buffers, not 50 MB
    grown = peak_rss(child) - peak_before
    assert grown < 16 * MB, f"the worker's peak memory grew {grown / MB:.1f} MB"
    assert snapshot() == before

    # Declared: refused on its Content-Length, before a byte of the body is read.
    serve_models(
        deepinfra_served, response_data=b"[" + b" " * (50 * MB) + b"]", content_type="text/json"
    )
    run = poll_again(own_redis)
    assert "(4.0 MB): it declares 50.0 MB, not read" in run.error_message
    assert peak_rss(child) - peak_before < 16 * MB
    assert snapshot() == before

    browser = built.login(*staff)
    page = browser.get("/health/deepinfra/")
    assert page.status_code == 200
    assert "BadPayload: deepinfra: the answer from /models/list is larger than" in page.text
    assert "PROVIDER_MAX_RESPONSE_BYTES" in browser.get("/health/").text  # the card's last error


def test_a_million_offers_are_refused_whole_and_the_worker_lives_on(
    stack, own_redis, deepinfra_served, staff
):
    """A catalog 300 times the biggest real one (Vast.ai's 3,000 offers) is no catalog a user
    wants half of: with the default cap the poll reads 32 MB of it, fails saying why, stores
    nothing of it, and the same worker process polls normally afterwards."""
    built, child, before = polled_once_by_the_worker(stack, deepinfra_served)
    built.web()

    sent = [0]
    serve_models(deepinfra_served, handler=catalog_stream(1_000_000, sent))
    run = poll_again(own_redis)
    assert (run.outcome, run.error_class) == ("failed", "BadPayload"), run.error_message
    assert "larger than PROVIDER_MAX_RESPONSE_BYTES (32.0 MB): cut off" in run.error_message
    assert sent[0] < 60 * MB, sent[0]  # of the ~550 MB it would have been
    assert snapshot() == before

    browser = built.login(*staff)
    for path in ("/", "/health/", "/health/deepinfra/", "/status/", "/api/v1/pricing"):
        assert browser.get(path).status_code == 200, path

    serve_models(deepinfra_served, handler=lambda r: Response(json.dumps(RECORDED), 200))
    assert poll_again(own_redis).outcome == "ok"
    assert pool_children(built.procs[0].pid) == [child]  # the same pool process did it

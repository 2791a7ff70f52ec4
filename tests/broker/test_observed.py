"""What the broker sees each offer do (time to first byte, tokens per second) is rolled up
from its usage records into the catalog (providers.Observation): the model page shows it for
every provider that served requests, saying it is GPUBroker's observation and over what
window and sample; `latency` and `throughput` routing rank by it."""

from __future__ import annotations

import re
import time
from datetime import timedelta

from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from werkzeug import Request, Response

from broker import usage
from broker.models import ApiKey, Usage
from broker.tasks import roll_up_observations
from gpubroker.celery import app
from providers.models import Observation
from tests.broker.conftest import CHAT_PATHS, MODEL, chat, recorded, recorded_stream, serve_chat

PAUSE = 0.3


def serve_paced(server, slug: str, *, before_headers: float = 0, mid_stream: float = 0) -> None:
    """The provider's recorded stream, its headers after `before_headers` seconds and the rest
    of its events `mid_stream` seconds after the first."""

    def answer(request: Request) -> Response:
        events = [e + "\n\n" for e in recorded_stream(slug).split("\n\n") if e]
        time.sleep(before_headers)

        def body():
            yield events[0]
            time.sleep(mid_stream)
            yield from events[1:]

        return Response(body(), content_type="text/event-stream")

    server.expect_request(CHAT_PATHS[slug]).respond_with_handler(answer)


def stream(sdk, slug: str) -> None:
    list(chat(sdk, stream=True, extra_body={"provider": {"only": [slug]}}).parse())


def test_observed_latency_and_throughput_rank_the_offers(sdk, world, httpserver):
    """Groq answers at once but streams slowly; DeepInfra answers late but streams at once.
    Before any request both rank by price (Hugging Face, the cheapest, first); after one
    streamed request each and a roll-up, `latency` picks Groq and `throughput` DeepInfra."""
    serve_paced(httpserver, "groq", mid_stream=PAUSE)
    serve_paced(httpserver, "deepinfra", before_headers=PAUSE)
    serve_chat(httpserver, "huggingface")
    assert (
        chat(sdk, extra_body={"provider": {"sort": "latency"}}).headers["x-gpubroker-provider"]
        == "huggingface"
    )
    stream(sdk, "groq")
    stream(sdk, "deepinfra")
    recorded(3)
    assert usage.roll_up() == 3
    groq, deepinfra = (Observation.objects.get(offer=world[s]) for s in ("groq", "deepinfra"))
    assert groq.latency_ms < PAUSE * 1000 <= deepinfra.latency_ms
    # Groq's 5 tokens took the pause; DeepInfra's 6 came at once after its first byte.
    assert groq.throughput_tps <= 5 / PAUSE * 1.1 and deepinfra.throughput_tps > 5 / PAUSE * 3
    assert (groq.requests, groq.streamed) == (1, 1)
    for sort, fastest in (("latency", "groq"), ("throughput", "deepinfra")):
        raw = chat(sdk, extra_body={"provider": {"sort": sort, "ignore": ["huggingface"]}})
        assert raw.headers["x-gpubroker-provider"] == fastest


def test_the_model_page_shows_what_gpubroker_observed_for_each_provider(
    sdk, world, httpserver, client
):
    serve_chat(httpserver, "groq")
    serve_chat(httpserver, "deepinfra")
    stream(sdk, "groq")
    chat(sdk, extra_body={"provider": {"only": ["deepinfra"]}})  # a whole answer
    chat(sdk, extra_body={"provider": {"only": ["deepinfra"]}})
    recorded(3)
    usage.roll_up()
    page = client.get(f"/models/{MODEL}/").content.decode()
    assert "Observed by GPUBroker" in page
    rows = {
        name: row
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", page.split("<tbody>")[1], re.S)
        for name in ("Groq", "DeepInfra", "Hugging Face")
        if f">{name}</a>" in row
    }
    observed = {
        name: row.split('class="observed">')[1].split("</td>")[0] for name, row in rows.items()
    }
    assert "ms to first byte" in observed["Groq"] and "tok/s" in observed["Groq"]
    assert "1 request (1 streamed), last 24 h" in observed["Groq"]
    # A whole answer's first byte is not a first token: throughput only.
    assert "tok/s" in observed["DeepInfra"] and "first byte" not in observed["DeepInfra"]
    assert "2 requests (0 streamed), last 24 h" in observed["DeepInfra"]
    assert observed["Hugging Face"] == "—"  # never served: nothing made up


def test_the_roll_up_counts_first_attempt_answers_in_the_window_only(world, raw_key):
    key = ApiKey.objects.get()
    now = timezone.now()

    def served(offer, **fields) -> Usage:
        row = {"key": key, "endpoint": "chat", "model": MODEL, "offer": offer, "stream": True,
               "cost_source": "prices", "outcome": "ok", "status_code": 200, "ttfb_ms": 100.0,
               "total_ms": 1100.0, "completion_tokens": 50} | fields  # fmt: skip
        return Usage.objects.create(**row)

    served(world["groq"])
    served(world["groq"], ttfb_ms=300.0, total_ms=2300.0, completion_tokens=150)
    served(world["groq"], ttfb_ms=9000.0, attempts=[{"provider": "deepinfra", "error": "timeout"}])
    served(world["groq"], ttfb_ms=9000.0, outcome="stream_error")
    served(world["groq"], ttfb_ms=9000.0, at=now - timedelta(hours=25))
    Observation.objects.create(
        offer=world["deepinfra"], since=now, until=now, requests=1, streamed=1, latency_ms=1.0
    )  # no request in the window: dropped
    assert usage.roll_up() == 1
    groq = Observation.objects.get()
    assert (groq.offer_id, groq.requests, groq.streamed) == (world["groq"].pk, 2, 2)
    assert groq.latency_ms == 200.0  # the mean of 100 and 300 ms
    assert groq.throughput_tps == 66.7  # 200 tokens over 1 s + 2 s of generation
    assert groq.window_hours == 24


def test_beat_rolls_up_every_five_minutes(sdk, world, httpserver):
    task = PeriodicTask.objects.get(task="broker.tasks.roll_up_observations")
    assert (task.interval.every, task.interval.period, task.expire_seconds) == (300, "seconds", 295)
    serve_chat(httpserver, "groq")
    chat(sdk, extra_body={"provider": {"only": ["groq"]}})
    recorded()
    app.conf.task_always_eager = True
    try:
        roll_up_observations.apply_async(expires=task.expire_seconds)
    finally:
        app.conf.task_always_eager = False
    assert Observation.objects.get().offer_id == world["groq"].pk

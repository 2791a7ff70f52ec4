"""What a provider may answer, served for real on loopback through the whole poll: a broken
answer keeps the last snapshot; a broken item is skipped, never stored as a price."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from werkzeug import Response

from providers.models import Offer
from providers.pipeline import poll_provider
from tests.conftest import payload
from tests.providers.test_pipeline import deepinfra, serve_catalog, snapshot

pytestmark = pytest.mark.django_db
__all__ = ["deepinfra"]


@pytest.fixture
def polled(deepinfra):
    """DeepInfra polled once from its recorded catalog: the snapshot a fault must not lose."""
    _, server = deepinfra
    serve_catalog(server)
    assert poll_provider("deepinfra").outcome == "ok"
    server.clear()
    server.expect_request("/v1/openai/models").respond_with_json(
        payload("deepinfra/openai_models.json")
    )
    return server, snapshot()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("<html><body>Bad gateway</body></html>", "text/html"),  # a proxy's error page, 200
        (json.dumps(payload("deepinfra/models_list.json"))[:5000], "application/json"),
        ('{"models": []}', "application/json"),  # the wrong envelope
        (json.dumps([1, "two", None, []]), "application/json"),  # items that are no objects
    ],
    ids=["html", "truncated-json", "wrong-envelope", "all-bad-items"],
)
def test_a_broken_answer_keeps_the_last_snapshot(polled, body, content_type):
    server, before = polled
    server.expect_request("/models/list").respond_with_data(body, content_type=content_type)
    run = poll_provider("deepinfra")
    assert run.outcome == "failed" and run.error_class == "BadPayload", run.error_message
    assert snapshot() == before


@pytest.mark.parametrize(
    "price",
    [float("nan"), float("inf"), -0.5, 1e12, "abc", None, True, {"cents": 1}],
    ids=["nan", "infinity", "negative", "1e12", "text", "null", "boolean", "object"],
)
def test_a_price_that_is_no_price_skips_its_item_only(polled, price):
    server, _ = polled
    models = payload("deepinfra/models_list.json")
    models[0]["pricing"]["cents_per_input_token"] = price
    server.expect_request("/models/list").respond_with_data(
        json.dumps(models), content_type="application/json"
    )
    run = poll_provider("deepinfra")
    assert (run.outcome, run.items_skipped, run.offers_seen) == ("partial", 1, 11)
    stored = Offer.objects.get(upstream_id=models[0]["model_name"])
    assert stored.usd_per_1m_input is not None and stored.usd_per_1m_input >= 0


def test_prices_as_numeric_strings_are_read_as_numbers(polled):
    server, _ = polled
    models = payload("deepinfra/models_list.json")
    for model in models:
        for name, value in model["pricing"].items():
            if name.startswith("cents_per") and isinstance(value, float | int):
                model["pricing"][name] = str(value)
    server.expect_request("/models/list").respond_with_json(models)
    assert poll_provider("deepinfra").outcome == "ok"


def answers(*responses: Response):
    """A handler giving each response in turn, then the last one forever."""
    queue = list(responses)
    return lambda request: queue.pop(0) if len(queue) > 1 else queue[0]


def catalog_response() -> Response:
    return Response(
        json.dumps(payload("deepinfra/models_list.json")), 200, content_type="application/json"
    )


def test_a_retry_after_http_date_in_the_past_is_retried_at_once(polled, settings):
    server, _ = polled
    past = format_datetime(datetime.now(UTC) - timedelta(minutes=5), usegmt=True)
    limited = Response("{}", 429, headers={"Retry-After": past})
    server.expect_request("/models/list").respond_with_handler(answers(limited, catalog_response()))
    assert poll_provider("deepinfra").outcome == "ok"


def test_a_retry_after_http_date_far_ahead_fails_the_poll_at_once(polled, settings):
    server, before = polled
    ahead = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    server.expect_request("/models/list").respond_with_response(
        Response("{}", 429, headers={"Retry-After": ahead})
    )
    run = poll_provider("deepinfra")
    assert (run.outcome, run.error_class, run.http_calls) == ("failed", "RateLimited", 1)
    assert snapshot() == before


def test_a_50_mb_answer_that_is_no_catalog_keeps_the_last_snapshot(polled):
    server, before = polled
    garbage = b'{"models": "' + b"x" * (50 * 1024 * 1024) + b'"}'
    server.expect_request("/models/list").respond_with_data(
        garbage, content_type="application/json"
    )
    run = poll_provider("deepinfra")
    assert (run.outcome, run.error_class) == ("failed", "BadPayload")
    assert "it declares 50.0 MB, not read" in run.error_message  # Content-Length: refused
    assert len(run.error_message) < 500  # the body is not repeated into the run
    assert snapshot() == before

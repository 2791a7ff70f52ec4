"""Long work never runs inside a web request: the dashboard's "Run health check" button,
under uvicorn as in production, against a provider that takes seconds to answer. The page
answers "queued" at once; the worker makes the call; the card shows the result when it is in."""

from __future__ import annotations

import json
import re
import time

import pytest
from werkzeug import Response

from health.models import HealthCheck
from tests.conftest import MODELS
from tests.faults.conftest import wait_until

pytestmark = pytest.mark.slow
SLOW_ANSWER = 4  # seconds the provider takes


def slow_models(request) -> Response:
    time.sleep(SLOW_ANSWER)
    return Response(json.dumps(MODELS), content_type="application/json")


def test_run_health_check_is_queued_and_the_card_follows_it(stack, registry, serve, staff):
    server = serve(registry["groq"])
    server.expect_request("/openai/v1/models").respond_with_handler(slow_models)
    built = stack("groq")
    built.env["GROQ_API_KEY"] = "gsk_faults000000000000000001"
    built.web()
    browser = built.login(*staff)
    dashboard = browser.get("/health/").text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', dashboard).group(1)

    started = time.monotonic()
    answer = browser.post(
        "/health/groq/check",
        data={"csrfmiddlewaretoken": token},
        headers={"HX-Request": "true", "Referer": f"{built.web_url}/health/"},
    )
    assert time.monotonic() - started < SLOW_ANSWER / 2, "the check ran inside the request"
    assert answer.status_code == 200
    assert "Health check queued" in answer.text
    assert not HealthCheck.objects.exists() and not server.log  # nobody called the provider
    card_url = re.search(r'hx-get="(/health/groq/\?check=[0-9.]+)"', answer.text).group(1)

    built.worker()  # the queued check waits for a worker, and is done by it

    def card_has_the_result() -> bool:
        return "Health check run" in browser.get(card_url, headers={"HX-Request": "true"}).text

    wait_until(card_has_the_result, 60, "the card shows the worker's check")
    card = browser.get(card_url, headers={"HX-Request": "true"}).text
    assert "<strong>ok</strong> (HTTP 200)" in card
    assert HealthCheck.objects.get().ok


def test_with_the_task_queue_down_the_button_says_nothing_was_checked(
    stack, registry, own_redis, staff
):
    built = stack("groq")
    built.web()
    browser = built.login(*staff)
    token = re.search(
        r'name="csrfmiddlewaretoken" value="([^"]+)"', browser.get("/health/").text
    ).group(1)
    own_redis.stop()  # Celery's broker too
    started = time.monotonic()
    answer = browser.post(
        "/health/groq/check",
        data={"csrfmiddlewaretoken": token},
        headers={"HX-Request": "true", "Referer": f"{built.web_url}/health/"},
    )
    assert answer.status_code == 200 and time.monotonic() - started < 10
    assert "Health check: the task queue did not answer (" in answer.text
    assert "?check=" not in answer.text  # nothing to follow

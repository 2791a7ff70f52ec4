"""A worker killed mid-ingest loses nothing: its transaction rolls back, the task is handed
back (acks_late + reject_on_worker_lost), the rerun takes over the lock, the dead run is
marked abandoned, and the 10,000 offers arrive."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from celery import Celery
from django.utils import timezone
from werkzeug import Response

from providers.models import Offer, PollRun, Provider
from providers.pipeline import poll_provider
from tests.conftest import payload
from tests.faults.conftest import pool_children, wait_until

pytestmark = pytest.mark.slow
OFFERS = 10_000


def catalog(size: int) -> list[dict]:
    """DeepInfra's /models/list with `size` models: the recorded ones, then copies."""
    recorded = payload("deepinfra/models_list.json")
    models = list(recorded)
    while len(models) < size:
        model = dict(recorded[len(models) % len(recorded)])
        model["model_name"] = f"faults/model-{len(models)}"
        models.append(model)
    return models


def test_a_worker_killed_mid_ingest_loses_nothing_and_the_poll_is_redone(
    stack, own_redis, registry, serve
):
    httpserver = serve(registry["deepinfra"])
    httpserver.expect_request("/v1/openai/models").respond_with_json(
        payload("deepinfra/openai_models.json")
    )
    httpserver.expect_request("/models/list").respond_with_json(catalog(12))
    assert poll_provider("deepinfra").outcome == "ok"
    before = set(Offer.objects.filter(available=True).values_list("upstream_id", flat=True))

    httpserver.clear()
    body = json.dumps(catalog(OFFERS))
    httpserver.expect_request("/v1/openai/models").respond_with_json(
        payload("deepinfra/openai_models.json")
    )
    httpserver.expect_request("/models/list").respond_with_data(
        body, content_type="application/json"
    )
    worker = stack("deepinfra").worker()
    (child,) = pool_children(worker.pid)
    sender = Celery(broker=own_redis.url)
    sender.send_task("providers.tasks.poll_provider", args=["deepinfra"])

    def fetched() -> bool:
        return any(r.path == "/models/list" for r, _ in httpserver.log)

    wait_until(fetched, 60, "the worker fetched the catalog")
    time.sleep(0.3)  # parsing and writing 10,000 offers takes seconds here
    killed = PollRun.objects.get(outcome="running")
    os.kill(child, signal.SIGKILL)

    def redone() -> bool:
        return PollRun.objects.filter(outcome="ok", offers_seen=OFFERS).exists()

    wait_until(redone, 120, "the redelivered poll wrote the 10,000 offers")
    killed.refresh_from_db()
    assert killed.outcome == "abandoned"
    available = set(Offer.objects.filter(available=True).values_list("upstream_id", flat=True))
    assert before <= available  # the last good snapshot survived the kill
    assert Offer.objects.count() == OFFERS  # all written once: nothing half-done was kept


def test_two_beats_scheduling_the_same_poll_write_it_once(stack, own_redis, registry, serve):
    """Two beat processes (a deploy overlap) queue the same poll twice; two worker processes
    take one each. One polls, the other finds the lock taken and skips."""
    httpserver = serve(registry["deepinfra"])
    httpserver.expect_request("/v1/openai/models").respond_with_json(
        payload("deepinfra/openai_models.json")
    )
    body = json.dumps(catalog(2_000))
    httpserver.expect_request("/models/list").respond_with_handler(
        lambda request: time.sleep(1) or Response(body, content_type="application/json")
    )
    # Fresh, so the worker's start-up catch-up poll stays out of this.
    Provider.objects.filter(slug="deepinfra").update(last_success_at=timezone.now())
    stack("deepinfra").worker(concurrency=2)
    sender = Celery(broker=own_redis.url)
    for _ in range(2):
        sender.send_task("providers.tasks.poll_provider", args=["deepinfra"])

    def both_done() -> bool:
        return PollRun.objects.exclude(outcome="running").count() == 2

    wait_until(both_done, 120, "both polls ended")
    outcomes = sorted(PollRun.objects.values_list("outcome", flat=True))
    assert outcomes == ["ok", "skipped"]
    assert Offer.objects.count() == 2_000

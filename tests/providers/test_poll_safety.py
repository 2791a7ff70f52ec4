"""A poll never wipes good data: an unparsable catalog, a dead worker, a hanging provider."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from health import checks, status
from marketplace.status import problem, providers_with_status
from providers.adapters.base import Catalog
from providers.models import Offer, PollRun, Provider
from providers.pipeline import poll_provider
from tests.conftest import payload
from tests.providers.test_pipeline import deepinfra, serve_catalog, snapshot

pytestmark = pytest.mark.django_db
__all__ = ["deepinfra"]  # the fixture, shared with the pipeline's tests


def test_a_catalog_with_no_parsable_item_keeps_the_last_snapshot(deepinfra):
    _provider, server = deepinfra
    serve_catalog(server)
    assert poll_provider("deepinfra").outcome == "ok"
    before, succeeded_at = snapshot(), Provider.objects.get(slug="deepinfra").last_success_at
    on_sale = Offer.objects.filter(available=True).count()
    serve_catalog(
        server,
        models=[{"model_name": m["model_name"]} for m in payload("deepinfra/models_list.json")],
    )  # the right envelope, every item without its pricing
    run = poll_provider("deepinfra")
    assert (run.outcome, run.error_class) == ("failed", "BadPayload")
    assert "none of the 12 items could be parsed" in run.error_message
    assert snapshot() == before
    assert Offer.objects.filter(available=True).count() == on_sale > 0
    assert Provider.objects.get(slug="deepinfra").last_success_at == succeeded_at


def test_more_than_half_bad_items_keeps_the_last_snapshot(deepinfra):
    _, server = deepinfra
    serve_catalog(server)
    poll_provider("deepinfra")
    before = snapshot()
    models = payload("deepinfra/models_list.json")
    for item in models[:7]:
        item["pricing"] = {"type": "tokens"}  # 7 of 12 without a price
    serve_catalog(server, models=models)
    run = poll_provider("deepinfra")
    assert (run.outcome, run.error_class) == ("failed", "BadPayload")
    assert "7 of 12 items" in run.error_message
    assert snapshot() == before


def test_a_type_error_in_a_parser_is_a_bug_not_a_skipped_item():
    def buggy(item):
        return item["id"] + 1  # str + int: a bug, whatever the payload says

    with pytest.raises(TypeError):
        Catalog.parse("x", [{"id": "a"}], buggy)
    skipped = Catalog.parse("x", [{}, "not an object"], buggy)  # missing field, wrong shape
    assert skipped.skipped == 2 and skipped.bad_share == 1


def test_the_lock_is_released_only_by_its_owner(deepinfra):
    provider, server = deepinfra
    serve_catalog(server)
    holder = PollRun.objects.create(provider=provider)
    assert provider.claim_poll(holder)
    other = PollRun.objects.create(provider=provider, outcome="ok")
    provider.release_poll(other)  # not the holder: the lock stays
    assert Provider.objects.get(slug="deepinfra").poll_owner == holder.pk
    assert poll_provider("deepinfra").outcome == "skipped"
    provider.release_poll(holder)
    assert Provider.objects.get(slug="deepinfra").poll_owner is None


def test_a_lock_held_past_its_time_is_taken_over_and_its_run_abandoned(deepinfra, settings):
    provider, server = deepinfra
    serve_catalog(server)
    dead = PollRun.objects.create(provider=provider)
    provider.claim_poll(dead)
    long_ago = timezone.now() - timedelta(seconds=settings.PROVIDER_POLL_LOCK_SECONDS + 1)
    Provider.objects.filter(slug="deepinfra").update(polling_since=long_ago)
    assert poll_provider("deepinfra").outcome == "ok"
    dead.refresh_from_db()
    assert dead.outcome == "abandoned" and dead.finished_at is not None


def test_a_redelivered_task_takes_over_its_dead_predecessors_lock(deepinfra):
    provider, server = deepinfra
    serve_catalog(server)
    dead = PollRun.objects.create(provider=provider, task_id="task-1")
    provider.claim_poll(dead)  # the worker died here, holding the lock
    run = poll_provider("deepinfra", task_id="task-1")  # the same message, delivered again
    assert run.outcome == "ok"
    dead.refresh_from_db()
    assert dead.outcome == "abandoned"
    assert poll_provider("deepinfra", task_id="task-2").outcome == "ok"  # lock released


def test_runs_left_running_past_the_lock_are_abandoned_and_count_as_failures(deepinfra, settings):
    provider, _ = deepinfra
    long_ago = timezone.now() - timedelta(seconds=settings.PROVIDER_POLL_LOCK_SECONDS + 1)
    stuck = PollRun.objects.create(provider=provider, started_at=long_ago)
    checks.housekeeping()  # the minute task
    stuck.refresh_from_db()
    assert stuck.outcome == "abandoned"
    assert problem(providers_with_status().get(slug="deepinfra")) == (
        "last poll failed (its worker stopped mid-poll)"
    )
    report = status.report(status.annotated(Provider.objects.filter(slug="deepinfra")).get())
    assert report.status == status.DEGRADED and "abandoned" in report.reason


def test_a_hanging_provider_is_given_up_at_the_poll_deadline(deepinfra, settings):
    _, server = deepinfra
    settings.PROVIDER_POLL_DEADLINE = 1.0
    settings.DEEPINFRA_TIMEOUT = 0.4
    settings.PROVIDER_MAX_RETRIES = 10  # 11 × 0.4 s without a deadline
    server.expect_request("/models/list").respond_with_handler(
        lambda request: time.sleep(0.6) or None
    )
    started = time.monotonic()
    run = poll_provider("deepinfra")
    assert run.outcome == "failed"
    assert time.monotonic() - started < 2.5  # the deadline, plus this slow machine's slack


def test_sync_providers_fails_when_every_provider_that_needs_the_network_failed(registry, settings):
    for provider in registry.values():
        if provider.slug not in ("render", "groq"):
            setattr(settings, f"{provider.env_prefix}_ENABLED", False)
    settings.GROQ_API_KEY = "gsk_networkdown00000001"
    settings.GROQ_BASE_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    settings.PROVIDER_MAX_RETRIES = 0
    with pytest.raises(CommandError, match="needed the network"):
        call_command("sync_providers")
    assert PollRun.objects.get(provider__slug="render").outcome == "ok"


def test_a_redelivered_task_of_a_queued_run_takes_its_own_lock_back(deepinfra):
    provider, server = deepinfra
    serve_catalog(server)
    queued = PollRun.objects.create(provider=provider, task_id="task-9")  # by the sync API
    provider.claim_poll(queued)  # its first delivery died holding the lock
    run = poll_provider("deepinfra", run_id=queued.pk, task_id="task-9")
    assert run.pk == queued.pk and run.outcome == "ok"
    assert Provider.objects.get(slug="deepinfra").poll_owner is None

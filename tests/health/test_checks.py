from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from gpubroker.celery import app
from health import checks, status, tasks
from health.models import HealthCheck
from providers.registry import load_registry
from resilience.models import SharedState
from resilience.store import store
from tests.conftest import KEY, MODELS, PATH

pytestmark = pytest.mark.django_db


def test_a_health_check_stores_its_outcome(registry, groq_server):
    groq_server.expect_request(PATH).respond_with_json(MODELS)
    check = checks.run_check(registry["groq"])
    assert (check.ok, check.status_class, check.error) == (True, "ok", "")
    assert check.latency_ms > 0
    assert status.report(registry["groq"]).window.calls == 1


def test_a_failed_check_keeps_the_error_without_the_key(registry, groq_server):
    groq_server.expect_request(PATH).respond_with_json(
        {"error": {"message": f"Invalid API Key: {KEY}"}}, status=401
    )
    check = checks.run_check(registry["groq"])
    assert (check.ok, check.status_class, check.status_code) == (False, "invalid_key", 401)
    assert "Invalid API Key" in check.error and KEY not in check.error


def test_a_missing_key_is_recorded_and_makes_the_provider_unavailable(registry, settings):
    settings.GROQ_API_KEY = ""
    check = checks.run_check(registry["groq"])
    assert check.status_class == "missing_key" and "GROQ_API_KEY" in check.error
    groq = status.annotated(type(registry["groq"]).objects.filter(slug="groq")).get()
    assert status.report(groq).status == "UNAVAILABLE"


def test_a_check_asks_the_provider_even_when_a_cached_answer_exists(
    registry, settings, groq_server
):
    settings.PROVIDER_CACHE_ENABLED = True
    settings.PROVIDER_MAX_RETRIES = 3
    groq_server.expect_request(PATH).respond_with_json(MODELS)
    registry["groq"].adapter().list_models()  # cached now
    groq_server.clear()
    groq_server.expect_request(PATH).respond_with_json({}, status=503)
    check = checks.run_check(registry["groq"])
    assert check.status_class == "server_error"
    assert len(groq_server.log) == 1  # one attempt: a check measures, it does not retry


def test_the_beat_task_checks_every_enabled_provider(registry, settings, groq_server):
    for provider in registry.values():
        if provider.slug not in ("groq", "huggingface"):
            setattr(settings, f"{provider.env_prefix}_ENABLED", False)
    settings.HUGGINGFACE_BASE_URL = settings.GROQ_BASE_URL
    groq_server.expect_request(PATH).respond_with_json(MODELS)
    groq_server.expect_request("/v1/models").respond_with_json({"data": []})
    old = HealthCheck.objects.create(provider=registry["groq"], ok=True, status_class="ok")
    HealthCheck.objects.filter(pk=old.pk).update(at=timezone.now() - timedelta(days=8))
    app.conf.task_always_eager = True
    try:
        tasks.check_providers()
    finally:
        app.conf.task_always_eager = False
    checked = set(HealthCheck.objects.values_list("provider__slug", flat=True))
    assert checked == {"groq", "huggingface"}
    assert not HealthCheck.objects.filter(pk=old.pk).exists()  # a week old: dropped


def test_a_check_of_a_disabled_or_unknown_provider_does_nothing(registry, settings):
    settings.GROQ_ENABLED = False
    tasks.check_provider("groq")
    tasks.check_provider("nope")
    assert not HealthCheck.objects.exists()


def test_the_schedule_is_seeded_once_and_admin_edits_survive(registry):
    task = PeriodicTask.objects.get(name="provider health checks")
    assert (task.task, task.interval.every, task.expire_seconds) == (
        "health.tasks.check_providers",
        60,
        55,
    )
    task.enabled = False
    task.save()
    load_registry()
    assert PeriodicTask.objects.filter(name="provider health checks").count() == 1
    assert PeriodicTask.objects.get(name="provider health checks").enabled is False


def test_expired_counters_are_purged_from_the_database_store(settings, registry):
    settings.REDIS_URL = ""
    store().incr([("window:groq:1", {"calls": 1}, 1)])
    SharedState.objects.filter(key="window:groq:1").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert store().read([], ["window:groq:1"])[1]["window:groq:1"] == {}
    checks.housekeeping()
    assert not SharedState.objects.filter(key="window:groq:1").exists()


def test_a_successful_check_records_the_http_status(registry, groq_server):
    groq_server.expect_request(PATH).respond_with_json(MODELS, status=203)
    check = checks.run_check(registry["groq"])
    assert (check.ok, check.status_code) == (True, 203)

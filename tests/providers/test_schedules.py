from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_celery_beat.models import PeriodicTask

from providers.adapters.base import Catalog, OfferIn
from providers.models import Kind, PollRun, Provider
from providers.pipeline import ingest
from providers.registry import load_registry
from providers.tasks import poll_provider

pytestmark = pytest.mark.django_db


def test_every_provider_gets_a_poll_schedule_with_its_interval(registry):
    task = PeriodicTask.objects.get(name="poll huggingface")
    assert task.task == "providers.tasks.poll_provider"
    assert json.loads(task.args) == ["huggingface"]
    assert task.interval.every == 3600
    assert task.expire_seconds == 3600
    assert PeriodicTask.objects.get(name="poll groq").interval.every == 300


def test_reloading_the_registry_keeps_admin_edits(registry):
    Provider.objects.filter(slug="groq").update(enabled=False, poll_interval=900)
    load_registry()
    groq = Provider.objects.get(slug="groq")
    assert (groq.enabled, groq.poll_interval) == (False, 900)
    assert Provider.objects.count() == len(registry)


def test_changing_the_interval_in_admin_reschedules_the_poll(registry, admin_client):
    groq = registry["groq"]
    response = admin_client.post(
        f"/admin/providers/provider/{groq.pk}/change/",
        {
            "name": "Groq",
            "kind": "llm-inference",
            "enabled": "on",
            "poll_interval": "120",
            "docs_url": groq.docs_url,
        },
    )
    assert response.status_code == 302
    assert PeriodicTask.objects.get(name="poll groq").interval.every == 120


def test_an_env_switch_disables_a_provider(registry, settings):
    settings.GROQ_ENABLED = False
    assert "groq" not in [p.slug for p in Provider.objects.enabled()]


def test_the_enabled_providers_are_a_query_to_chain(registry, settings):
    settings.GROQ_ENABLED = False
    Provider.objects.filter(slug="deepinfra").update(enabled=False)
    enabled = Provider.objects.enabled()
    assert not enabled.filter(slug__in=["groq", "deepinfra"]).exists()
    assert enabled.filter(slug="vastai").exists()


def test_the_poll_task_runs_the_pipeline(registry, settings):
    settings.GROQ_API_KEY = ""
    poll_provider.apply(args=["groq"])
    run = PollRun.objects.get(provider__slug="groq")
    assert (run.outcome, run.error_class) == ("failed", "MissingKey")


def test_a_disabled_provider_is_not_polled_by_its_schedule(registry, serve, settings):
    server = serve(registry["deepinfra"])
    settings.DEEPINFRA_ENABLED = False
    poll_provider.apply(args=["deepinfra"])
    assert len(server.log) == 0
    assert not PollRun.objects.filter(provider__slug="deepinfra").exists()


def test_disabling_a_provider_in_admin_pauses_its_schedule(registry, admin_client):
    groq = registry["groq"]
    admin_client.post(
        f"/admin/providers/provider/{groq.pk}/change/",
        {
            "name": "Groq",
            "kind": "llm-inference",
            "poll_interval": "300",
            "docs_url": groq.docs_url,
        },
    )
    assert PeriodicTask.objects.get(name="poll groq").enabled is False


def test_sync_providers_says_a_disabled_provider_was_not_polled(registry, capsys):
    Provider.objects.filter(slug="groq").update(enabled=False)
    with pytest.raises(CommandError, match="No provider was polled successfully"):
        call_command("sync_providers", "--provider", "groq")
    assert "skipped: Provider disabled in admin; not polled." in capsys.readouterr().out


def test_sync_providers_on_a_just_migrated_database_says_to_load_the_registry(db):
    with pytest.raises(CommandError, match=r"run manage\.py load_providers first"):
        call_command("sync_providers")


def test_regions_are_a_multi_select_of_the_regions_offers_carry(registry, admin_client):
    groq = registry["groq"]
    offers = [OfferIn(upstream_id=r, name=r, kind=Kind.LLM, region=r) for r in ("eu", "us")]
    ingest(groq, Catalog(offers=offers))
    url = f"/admin/providers/provider/{groq.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert '<select name="regions"' in page and "multiple" in page
    assert '<option value="eu">eu</option>' in page and '<option value="us">us</option>' in page
    form = {"name": "Groq", "kind": "llm-inference", "enabled": "on", "poll_interval": "300"}
    response = admin_client.post(url, {**form, "regions": ["eu", "us"], "docs_url": groq.docs_url})
    assert response.status_code == 302
    groq.refresh_from_db()
    assert groq.regions == ["eu", "us"]

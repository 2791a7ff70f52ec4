"""With nothing to list, the page says why, provider by provider, and points ops to /health/."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from providers.models import Credential, Provider
from providers.pipeline import poll_provider
from tests.conftest import payload
from tests.marketplace.conftest import gpu, llm, publish, usd

pytestmark = pytest.mark.django_db


def reasons(client, query: str = "") -> str:
    body = client.get(f"/?{query}").content.decode()
    assert "No offers match." in body
    assert '<a href="/status/">Provider health</a>' in body  # public; /health/ is for staff
    return body


def test_a_provider_that_needs_a_key_and_has_none_says_so(client, registry, settings):
    settings.GROQ_API_KEY = ""
    body = reasons(client, "provider=groq")
    assert (
        "<strong>Groq</strong>: no API key configured (set GROQ_API_KEY or add one in admin)"
        in (body)
    )


def test_a_key_added_in_admin_counts_as_configured(client, registry, settings):
    settings.GROQ_API_KEY = ""
    credential = Credential(provider=registry["groq"])
    credential.set_key("gsk_fromadmin000000000000001")
    credential.save()
    assert "no API key configured" not in reasons(client, "provider=groq")


def test_a_provider_disabled_in_admin_or_by_environment_says_which(client, registry, settings):
    Provider.objects.filter(slug="deepinfra").update(enabled=False)
    settings.HUGGINGFACE_ENABLED = False
    body = reasons(client)
    assert "<strong>DeepInfra</strong>: disabled in admin" in body
    assert "<strong>Hugging Face</strong>: disabled by HUGGINGFACE_ENABLED" in body


def test_a_provider_never_polled_says_so(client, registry):
    assert "<strong>DeepInfra</strong>: never polled" in reasons(client)


def test_a_failed_last_poll_says_so_with_its_error_class(client, registry, serve, settings):
    settings.GROQ_API_KEY = "gsk_revoked00000000000000001"
    serve(registry["groq"]).expect_request("/openai/v1/models").respond_with_json(
        payload("groq/error_401.json"), status=401
    )
    assert poll_provider("groq").outcome == "failed"
    body = reasons(client, "provider=groq")
    assert "<strong>Groq</strong>: last poll failed: invalid key (InvalidKey)" in body
    assert "gsk_revoked" not in body


def test_a_healthy_provider_with_nothing_matching_is_not_blamed(client, registry):
    publish(registry["deepinfra"], llm("a/model", usd_per_1m_input=usd("1")))
    body = reasons(client, "provider=deepinfra&q=zzz")
    assert "<strong>DeepInfra</strong>:" not in body
    assert "Every provider in view is polled and healthy" in body


def test_problems_are_listed_above_the_offers_that_are_there(client, registry, settings):
    settings.GROQ_API_KEY = ""
    publish(registry["deepinfra"], llm("a/model", usd_per_1m_input=usd("1")))
    body = client.get("/").content.decode()
    assert "Some providers may be missing or out of date" in body
    assert "<strong>Groq</strong>: no API key configured" in body


def test_an_open_circuit_breaker_says_so(client, registry, serve):
    server = serve(registry["deepinfra"])
    server.expect_request("/models/list").respond_with_data("upstream down", status=503)
    for _ in range(5):  # PROVIDER_CIRCUIT_BREAKER_THRESHOLD failed polls trip the breaker
        poll_provider("deepinfra")
    calls_before = len(server.log)
    assert poll_provider("deepinfra").error_class == "CircuitBreakerOpen"
    assert len(server.log) == calls_before  # no call made while open
    body = reasons(client, "provider=deepinfra")
    assert (
        "<strong>DeepInfra</strong>: last poll failed: unreachable (Transient);"
        " circuit breaker open: calls are paused after repeated failures" in body
    )  # the cause first, the breaker second


def page_text(client, query: str = "") -> str:
    """The page as read: timesince's non-breaking spaces as plain ones."""
    return client.get(f"/?{query}").content.decode().replace("\xa0", " ")


def test_a_provider_whose_last_success_is_older_than_twice_its_interval_is_named(client, gpu_cloud):
    three_hours_ago = timezone.now() - timedelta(hours=3, minutes=1)
    publish(gpu_cloud, gpu("1", "RTX 4090", usd_per_gpu_hour=usd("0.35")), at=three_hours_ago)
    body = page_text(client, "provider=gpucloud")
    assert "Some providers may be missing or out of date" in body
    assert (
        "<strong>GPU Cloud</strong>: prices last updated 3 hours ago (polled every 10 minutes)"
        in body
    )
    assert '<span class="badge stale"' in body  # the card says the same


def test_a_provider_polled_within_twice_its_interval_is_not_named(client, gpu_cloud):
    nineteen_minutes_ago = timezone.now() - timedelta(minutes=19)  # interval is 10 minutes
    publish(gpu_cloud, gpu("1", "RTX 4090", usd_per_gpu_hour=usd("0.35")), at=nineteen_minutes_ago)
    body = page_text(client, "provider=gpucloud")
    assert "<strong>GPU Cloud</strong>:" not in body
    assert "badge stale" not in body


def test_a_stale_provider_is_named_only_when_in_view(client, registry, gpu_cloud):
    publish(gpu_cloud, gpu("1", "RTX 4090"), at=timezone.now() - timedelta(days=2))
    publish(registry["deepinfra"], llm("a/model", usd_per_1m_input=usd("1")))
    stale = "<strong>GPU Cloud</strong>: prices last updated 2 days ago (polled every 10 minutes)"
    assert stale in page_text(client)
    assert "<strong>GPU Cloud</strong>:" not in page_text(client, "provider=deepinfra")


def test_kept_results_point_a_visitor_to_status_and_staff_to_health(
    client, registry, settings, django_user_model
):
    """The results are kept per query between polls: a visitor's copy is not staff's."""
    settings.GROQ_API_KEY = ""
    for _ in range(2):
        reasons(client, "provider=groq")
    staff = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    client.force_login(staff)
    body = client.get("/?provider=groq").content.decode()
    assert '<a href="/health/">Provider health</a>' in body
    assert '<a href="/status/">Provider health</a>' not in body
    client.logout()
    reasons(client, "provider=groq")

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from providers.adapters.base import Catalog, OfferIn
from providers.models import Offer, PollRun, PriceChange
from providers.pipeline import ingest, poll_provider
from tests.conftest import payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def deepinfra(registry, serve):
    provider = registry["deepinfra"]
    return provider, serve(provider)


def serve_catalog(server, models=None):
    server.clear()
    server.expect_request("/models/list").respond_with_json(
        payload("deepinfra/models_list.json") if models is None else models
    )
    server.expect_request("/v1/openai/models").respond_with_json(
        payload("deepinfra/openai_models.json")
    )


def snapshot():
    return list(
        Offer.objects.order_by("upstream_id").values(
            "upstream_id", "usd_per_1m_input", "usd_per_1m_output", "available", "first_seen"
        )
    )


def test_a_poll_stores_every_offer_and_records_the_run(deepinfra):
    provider, server = deepinfra
    serve_catalog(server)
    run = poll_provider("deepinfra")
    assert run.outcome == "ok"
    assert run.http_calls == 2
    assert run.offers_seen == run.offers_added == 12
    assert Offer.objects.filter(provider=provider).count() == 12
    provider.refresh_from_db()
    assert provider.last_success_at is not None and provider.polling_since is None


def test_polling_the_same_data_twice_changes_nothing(deepinfra):
    _provider, server = deepinfra
    serve_catalog(server)
    poll_provider("deepinfra")
    before = snapshot()
    serve_catalog(server)
    run = poll_provider("deepinfra")
    assert (run.offers_added, run.offers_changed, run.offers_gone) == (0, 0, 0)
    assert snapshot() == before
    assert PriceChange.objects.count() == 0


def test_a_price_change_is_recorded_once(deepinfra):
    _provider, server = deepinfra
    serve_catalog(server)
    poll_provider("deepinfra")
    models = payload("deepinfra/models_list.json")
    models[0]["pricing"]["cents_per_input_token"] = 3e-06
    for _ in range(2):
        serve_catalog(server, models=models)
        poll_provider("deepinfra")
    change = PriceChange.objects.get()
    assert (change.field, change.old, change.new) == (
        "usd_per_1m_input",
        Decimal("0.02"),
        Decimal("0.03"),
    )
    offer = Offer.objects.get(upstream_id="meta-llama/Meta-Llama-3.1-8B-Instruct")
    assert offer.usd_per_1m_input == Decimal("0.03")
    assert offer.last_price_change == change.at
    assert offer.first_seen < change.at


def test_a_vanished_offer_is_marked_unavailable_not_deleted(deepinfra):
    _provider, server = deepinfra
    serve_catalog(server)
    poll_provider("deepinfra")
    models = payload("deepinfra/models_list.json")
    gone = models.pop(1)["model_name"]
    serve_catalog(server, models=models)
    run = poll_provider("deepinfra")
    assert run.offers_gone == 1
    assert Offer.objects.get(upstream_id=gone).available is False


def test_a_failed_poll_keeps_the_last_snapshot(deepinfra):
    provider, server = deepinfra
    serve_catalog(server)
    poll_provider("deepinfra")
    before = snapshot()
    server.clear()
    server.expect_request("/models/list").respond_with_data("upstream exploded", status=502)
    run = poll_provider("deepinfra")
    assert run.outcome == "failed"
    assert run.error_class == "Transient"
    assert "HTTP 502" in run.error_message
    assert snapshot() == before
    provider.refresh_from_db()
    assert provider.last_polled_at > provider.last_success_at


def test_a_malformed_payload_keeps_the_last_snapshot(deepinfra):
    _provider, server = deepinfra
    serve_catalog(server)
    poll_provider("deepinfra")
    before = snapshot()
    serve_catalog(server, models={"unexpected": "shape"})
    run = poll_provider("deepinfra")
    assert (run.outcome, run.error_class) == ("failed", "BadPayload")
    assert snapshot() == before


def test_one_bad_item_is_skipped_and_the_run_is_partial(deepinfra):
    _provider, server = deepinfra
    models = payload("deepinfra/models_list.json")
    models[3]["pricing"] = {"type": "tokens"}  # no cents_per_input_token
    serve_catalog(server, models=models)
    run = poll_provider("deepinfra")
    assert (run.outcome, run.items_skipped, run.offers_seen) == ("partial", 1, 11)


def test_an_overlapping_poll_is_refused(deepinfra):
    provider, server = deepinfra
    assert provider.claim_poll()
    run = poll_provider("deepinfra")
    assert run.outcome == "skipped"
    assert len(server.log) == 0


def test_a_poll_of_5000_offers_makes_a_bounded_number_of_queries(
    registry, django_assert_max_num_queries
):
    provider = registry["deepinfra"]

    def catalog(price: str) -> Catalog:
        return Catalog(
            offers=[
                OfferIn(
                    upstream_id=f"org/Model-{i}",
                    name=f"org/Model-{i}",
                    kind="llm-inference",
                    usd_per_1m_input=Decimal(price),
                )
                for i in range(5000)
            ]
        )

    # 12, +2 for model identity (the provider's aliases, the models already known)
    with django_assert_max_num_queries(14):
        ingest(provider, catalog("0.10"))
    with django_assert_max_num_queries(16):
        counts = ingest(provider, catalog("0.20"))
    assert counts["changed"] == 5000
    assert PriceChange.objects.count() == 5000


def test_sync_providers_prints_each_outcome_and_a_summary(deepinfra, capsys, settings):
    _provider, server = deepinfra
    serve_catalog(server)
    settings.GROQ_API_KEY = ""
    settings.HUGGINGFACE_ENABLED = False
    call_command("sync_providers")
    out = capsys.readouterr().out
    assert "Polling DeepInfra" in out
    assert "ok: 12 offers (12 new" in out
    assert "failed: MissingKey" in out  # Groq without a key
    assert "provider" in out and "deepinfra" in out and "groq" in out


def test_sync_providers_exits_non_zero_when_every_provider_failed(deepinfra):
    _provider, server = deepinfra
    server.expect_request("/models/list").respond_with_data("", status=503)
    with pytest.raises(CommandError, match="No provider was polled successfully"):
        call_command("sync_providers", "--provider", "deepinfra")


def test_sync_providers_rejects_an_unknown_slug(registry):
    with pytest.raises(CommandError, match="Unknown provider 'nope'"):
        call_command("sync_providers", "--provider", "nope")


def test_sync_api_is_staff_only(client, registry):
    assert client.get("/api/v1/providers/sync").status_code == 401


def test_sync_api_returns_the_json_summary(staff_client, deepinfra):
    provider, server = deepinfra
    serve_catalog(server)
    response = staff_client.post("/api/v1/providers/sync?provider=deepinfra")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] == 1 and body["failed"] == 0
    assert body["providers"][0]["offers_added"] == 12
    assert PollRun.objects.filter(provider=provider, outcome="ok").count() == 1


def test_sync_api_answers_404_for_an_unknown_provider(staff_client, registry):
    response = staff_client.get("/api/v1/providers/sync?provider=nope")
    assert response.status_code == 404
    assert "nope" in response.json()["error"]
    assert staff_client.get("/api/v1/providers/sync?provider=%00").status_code == 404

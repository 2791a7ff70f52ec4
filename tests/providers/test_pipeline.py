"""The poll pipeline: LLM and GPU offers land through the same poll and ingest."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from providers.adapters.base import Catalog, OfferIn
from providers.models import Kind, Offer, PollRun, PriceChange, Provider
from providers.pipeline import ingest, poll_provider
from tests.conftest import payload, rewritten, row_versions
from tests.providers.conftest import serve_akash, serve_ionet, serve_vast
from tests.providers.volume import vast_search

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

    # 12 and 16, +1 for plausibility (other providers' prices of these models), +2 for model
    # identity (the provider's aliases, the models already known)
    with django_assert_max_num_queries(15):
        ingest(provider, catalog("0.10"))
    first_seen = Offer.objects.values_list("first_seen", flat=True).first()
    with django_assert_max_num_queries(19):
        counts = ingest(provider, catalog("0.20"))
    assert counts["changed"] == 5000
    assert PriceChange.objects.count() == 5000
    # written through the temporary table: every row has the new price, its first sighting kept
    rows = Offer.objects.values_list("usd_per_1m_input", "first_seen", "last_price_change")
    assert {(price, seen) for price, seen, _ in rows} == {(Decimal("0.2"), first_seen)}
    assert all(moved and moved > first_seen for *_, moved in rows)


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
    assert client.post("/api/v1/providers/sync").status_code == 401


def test_sync_api_returns_the_json_summary(staff_client, deepinfra, eager_tasks):
    provider, server = deepinfra
    serve_catalog(server)
    response = staff_client.post("/api/v1/providers/sync?provider=deepinfra&wait=5")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] == 1 and body["failed"] == 0
    assert body["providers"][0]["offers_added"] == 12
    assert PollRun.objects.filter(provider=provider, outcome="ok").count() == 1


def test_sync_api_answers_404_for_an_unknown_provider(staff_client, registry):
    response = staff_client.post("/api/v1/providers/sync?provider=nope")
    assert response.status_code == 404
    assert "nope" in response.json()["error"]
    assert staff_client.post("/api/v1/providers/sync?provider=%00").status_code == 404


# --- GPU providers ----------------------------------------------------------------------


def test_sync_providers_vastai_stores_normalised_offers(vastai, capsys):
    provider, server = vastai
    serve_vast(server)
    call_command("sync_providers", "--provider", "vastai")
    out = capsys.readouterr().out
    assert "ok: 30 offers (30 new, 0 changed, 0 gone, 0 skipped) in 1 call\n" in out
    h100 = Offer.objects.select_related("gpu").get(provider=provider, upstream_id="21319944")
    assert h100.kind == Kind.GPU and h100.gpu.canonical == "H100 SXM 80GB"
    assert (h100.gpu_count, h100.vram_gb, h100.country, h100.region) == (8, 80, "US", "us")
    assert h100.vram_reported_gb == 79.6  # 81,559 MiB usable, kept beside the spec size
    assert h100.usd_per_gpu_hour == Decimal("2.200174") and h100.interruptible is False
    assert h100.gscore is not None and 0 < h100.gscore <= 100
    unnamed = Offer.objects.get(provider=provider, upstream_id="21277301")
    assert unnamed.gpu is None and unnamed.gpu_name == "" and unnamed.gscore is None


def test_a_second_poll_records_gpu_price_history_and_gone_offers(vastai):
    _provider, server = vastai
    serve_vast(server)
    poll_provider("vastai")
    body = payload("vastai/bundles.json")
    body["offers"][0]["dph_total"] = 0.40  # 21334871, 1× RTX 4090
    del body["offers"][1]
    server.clear()
    serve_vast(server, body)
    run = poll_provider("vastai")
    assert (run.outcome, run.offers_changed, run.offers_gone) == ("ok", 1, 2)
    moved = PriceChange.objects.filter(offer__upstream_id="21334871")
    assert {(c.field, c.old, c.new) for c in moved} == {
        ("usd_per_instance_hour", Decimal("0.321042"), Decimal("0.4")),
        ("usd_per_gpu_hour", Decimal("0.321042"), Decimal("0.4")),
    }
    gone = Offer.objects.get(upstream_id="21342210")
    assert gone.available is False and gone.gscore is None


def test_a_gpu_name_that_becomes_known_is_linked_on_the_next_poll(vastai):
    _provider, server = vastai
    body = payload("vastai/bundles.json")
    body["offers"][0]["gpu_name"] = "RTX 4090 D"
    serve_vast(server, body)
    poll_provider("vastai")
    offer = Offer.objects.get(upstream_id="21334871")
    assert offer.gpu is None and offer.gpu_name == "RTX 4090 D"
    offer_gpu = Offer.objects.get(upstream_id="21342210").gpu
    offer_gpu.aliases.append("RTX 4090 D")  # an admin maps the spelling
    offer_gpu.save()
    poll_provider("vastai")
    offer.refresh_from_db()
    assert offer.gpu == offer_gpu and offer.gpu_name == "RTX 4090"


def test_a_3000_offer_poll_takes_a_bounded_number_of_queries(vastai, django_assert_max_num_queries):
    provider, server = vastai
    serve_vast(server, vast_search(3000))
    with django_assert_max_num_queries(25):
        run = poll_provider("vastai")
    assert run.offers_added == 6000
    scored = Offer.objects.filter(provider=provider, gscore_value__isnull=False)
    assert scored.count() == 5600  # all but the 400 whose GPU has no name


def test_a_3000_offer_repoll_that_moves_one_price_writes_that_offer_alone(
    vastai, django_assert_max_num_queries
):
    """The offers that set the G-Score scale (the 99th-percentile value; the generated search
    repeats each offer, so there are two) halve their price, so the scale moves and every score
    with it: each is read on the new scale, and no offer row but the moved ones is written."""
    provider, server = vastai
    body = vast_search(3000)
    serve_vast(server, body)
    poll_provider("vastai")
    before = row_versions()
    scale = Provider.objects.get(pk=provider.pk).gscore_reference
    pivots = set(Offer.objects.filter(gscore_value=scale).values_list("upstream_id", flat=True))
    for item in body["offers"]:
        if str(item["id"]) in pivots:  # on demand: the whole offer's price
            item["dph_base"] /= 2
            item["dph_total"] /= 2
        if f"{item['id']}:bid" in pivots:  # interruptible: the minimum bid
            item["min_bid"] /= 2
    server.clear()
    serve_vast(server, body)
    # as many whatever the number of offers (one reads other providers' prices of these GPUs)
    with django_assert_max_num_queries(23):
        run = poll_provider("vastai")
    assert (run.outcome, run.offers_changed) == ("ok", len(pivots))
    assert rewritten(before) == pivots and len(pivots) < 5
    assert Provider.objects.get(pk=provider.pk).gscore_reference > scale


def test_sync_providers_fetches_all_four_gpu_providers(registry, serve, httpserver, settings):
    for provider in Provider.objects.exclude(kind=Kind.GPU):
        setattr(settings, f"{provider.env_prefix}_ENABLED", False)
    settings.IONET_API_KEY = "io-test-key-5678"
    for slug in ("vastai", "akash", "ionet", "render"):
        serve(registry[slug])
    serve_vast(httpserver)
    serve_akash(httpserver)
    serve_ionet(httpserver)
    call_command("sync_providers")
    counts = {
        slug: Offer.objects.filter(provider__slug=slug, available=True).count()
        for slug in ("vastai", "akash", "ionet", "render")
    }
    assert counts == {"vastai": 30, "akash": 12, "ionet": 10, "render": 2}
    assert 100 in [o.gscore for o in Offer.objects.select_related("provider")]
    ranges = Offer.objects.filter(provider__slug="akash", usd_per_gpu_hour_min__isnull=False)
    assert ranges.count() == 11  # p100 has no bids: its price stays unknown


def test_a_failed_gpu_poll_keeps_the_last_snapshot(vastai):
    provider, server = vastai
    serve_vast(server)
    poll_provider("vastai")
    server.clear()
    serve_vast(server, {"detail": "API requests too frequent endpoint threshold=4.5"}, status=429)
    run = poll_provider("vastai")
    assert (run.outcome, run.error_class) == ("failed", "RateLimited")
    assert Offer.objects.filter(provider=provider, available=True).count() == 30
    assert json.loads(json.dumps(run.as_dict()))["error_message"].endswith("threshold=4.5")

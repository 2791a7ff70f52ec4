"""The poll's writes the marketplace relies on: COPY for new offers, last_seen, the roll-up."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection

from providers.adapters.base import Catalog
from providers.models import Offer, OfferFacet
from providers.pipeline import ingest, poll_provider
from tests.conftest import payload
from tests.marketplace.conftest import days_ago, llm, publish, usd

pytestmark = pytest.mark.django_db


def test_a_5000_offer_poll_is_a_handful_of_queries_and_stores_every_field(
    registry, django_assert_max_num_queries
):
    deepinfra = registry["deepinfra"]
    offers = [
        llm(f"m/{i}", region="us", usd_per_1m_input=usd("0.123456"), compliance_tags=["soc2"])
        for i in range(5000)
    ]
    with django_assert_max_num_queries(12):
        ingest(deepinfra, Catalog(offers=offers))
    stored = Offer.objects.get(upstream_id="m/4999")
    assert stored.usd_per_1m_input == Decimal("0.123456")
    assert stored.compliance_tags == ["region=us", "soc2"]
    assert stored.first_seen == stored.last_seen
    assert OfferFacet.objects.get(provider=deepinfra).offers == 5000


def test_a_repoll_marks_unchanged_offers_seen_again(registry):
    deepinfra = registry["deepinfra"]
    first, second = days_ago(1), days_ago(0)
    publish(deepinfra, llm("a/model", usd_per_1m_input=usd("1")), at=first)
    publish(deepinfra, llm("a/model", usd_per_1m_input=usd("1")), at=second)
    offer = Offer.objects.get()
    assert (offer.first_seen, offer.last_seen) == (first, second)


def test_the_roll_up_follows_offers_that_come_and_go(registry):
    deepinfra = registry["deepinfra"]
    publish(deepinfra, llm("a/m", region="us"), llm("b/m", region="us"), llm("c/m", region="eu"))
    publish(deepinfra, llm("a/m", region="us"))
    rows = set(OfferFacet.objects.values_list("region", "available", "offers"))
    assert rows == {("us", True, 1), ("us", False, 1), ("eu", False, 1)}


def test_a_gpu_poll_writes_each_offer_once_with_its_g_score(registry, serve):
    serve(registry["vastai"]).expect_request("/api/v0/bundles/").respond_with_json(
        payload("vastai/bundles.json")
    )
    assert poll_provider("vastai").outcome == "ok"
    assert Offer.objects.filter(gscore__isnull=False).count() > 20
    assert Offer.objects.filter(gscore=100).exists()
    # One write per row: no offer was written again (by another transaction) to be scored.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(DISTINCT xmin::text) FROM {Offer._meta.db_table}")
        assert cursor.fetchone()[0] == 1

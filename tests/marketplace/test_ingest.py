"""The poll's writes the marketplace relies on: COPY for new offers, only changed offers
written again, last seen, the roll-up."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.db import connection

from providers.adapters.base import Catalog
from providers.models import Offer, OfferFacet, OfferPriceBand
from providers.pipeline import ingest, poll_provider
from tests.conftest import payload, rewritten, row_versions
from tests.marketplace.conftest import days_ago, gpu, llm, publish, usd

pytestmark = pytest.mark.django_db


def test_a_5000_offer_poll_is_a_handful_of_queries_and_stores_every_field(
    registry, django_assert_max_num_queries
):
    deepinfra = registry["deepinfra"]
    offers = [
        llm(f"m/{i}", region="us", usd_per_1m_input=usd("0.123456"), compliance_tags=["soc2"])
        for i in range(5000)
    ]
    # 12, +1 for plausibility (other providers' prices), +2 for model identity (the
    # provider's aliases, the models already known)
    with django_assert_max_num_queries(15):
        ingest(deepinfra, Catalog(offers=offers))
    stored = Offer.objects.get(upstream_id="m/4999")
    assert stored.usd_per_1m_input == Decimal("0.123456")
    assert stored.compliance_tags == ["region=us", "soc2"]
    assert stored.first_seen == stored.last_seen
    assert OfferFacet.objects.get(provider=deepinfra).offers == 5000


def test_a_poll_stores_text_numbers_and_dates_exactly_as_the_provider_gave_them(registry):
    """New offers reach the database as COPY text the pipeline writes itself: tabs, line
    breaks, backslashes, quotes and non-ASCII survive, NULL stays NULL, not "None"."""
    deepinfra = registry["deepinfra"]
    awkward = 'Tab\there, line\nbreak, CR\r, back\\slash \\N, "quoted", «ünï» 模型'
    offer = llm(
        "odd/model",
        description=awkward,
        price_note="\\.",
        capabilities=["tools", 'say "hi"\\', "ta\tb"],
        usd_per_1m_input=usd("0.000001"),
        usd_per_1m_output=usd("12345678.123456"),
        throughput_tps=1e-05,
        price_source_date=date(2026, 2, 28),
        deprecated_at=datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        verified=False,
    )
    plain = llm("plain/model", context_length=None)
    ingest(deepinfra, Catalog(offers=[offer, plain]))
    stored = Offer.objects.get(upstream_id="odd/model")
    assert stored.description == awkward and stored.price_note == "\\."
    assert stored.capabilities == ["tools", 'say "hi"\\', "ta\tb"]
    assert (stored.usd_per_1m_input, stored.usd_per_1m_output) == (
        Decimal("0.000001"),
        Decimal("12345678.123456"),
    )
    assert stored.throughput_tps == 1e-05 and stored.verified is False
    assert stored.price_source_date == date(2026, 2, 28)
    assert stored.deprecated_at == datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    other = Offer.objects.get(upstream_id="plain/model")
    assert other.context_length is None and other.verified is None
    assert other.usd_per_1m_input is None and other.description == ""


def last_seen_on_page(client, offer: Offer) -> str:
    """The "last seen" line of an offer's page."""
    page = client.get(f"/offers/{offer.pk}/").content.decode()
    return re.search(r"<dt>last seen</dt><dd>(.*?)</dd>", page).group(1)


def minute(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def test_a_repoll_shows_unchanged_offers_seen_again_without_rewriting_them(client, registry):
    deepinfra = registry["deepinfra"]
    first, second = days_ago(1), days_ago(0)
    publish(deepinfra, llm("a/model", usd_per_1m_input=usd("1")), at=first)
    before = row_versions()
    publish(deepinfra, llm("a/model", usd_per_1m_input=usd("1")), at=second)
    assert rewritten(before) == set()
    offer = Offer.objects.get()
    assert offer.first_seen == first and offer.seen_at == second
    assert last_seen_on_page(client, offer) == minute(second)


def test_an_offer_gone_from_a_poll_was_last_seen_in_the_poll_before(client, registry):
    deepinfra = registry["deepinfra"]
    polls = days_ago(2), days_ago(1), days_ago(0)
    publish(deepinfra, llm("a/m"), llm("b/m"), at=polls[0])
    publish(deepinfra, llm("a/m"), llm("b/m"), at=polls[1])
    publish(deepinfra, llm("a/m"), at=polls[2])
    kept, gone = Offer.objects.order_by("upstream_id")
    assert (kept.available, gone.available) == (True, False)
    assert last_seen_on_page(client, kept) == minute(polls[2])
    assert last_seen_on_page(client, gone) == minute(polls[1])


def test_a_5000_offer_repoll_that_moves_one_price_writes_that_offer_alone(
    registry, django_assert_max_num_queries
):
    deepinfra = registry["deepinfra"]
    offers = [llm(f"m/{i}", region="us", usd_per_1m_input=usd("1")) for i in range(5000)]
    ingest(deepinfra, Catalog(offers=offers))
    before = row_versions()
    offers[7] = llm("m/7", region="us", usd_per_1m_input=usd("0.9"))
    # 12, +1 for plausibility (other providers' prices), +2 for model identity (the
    # provider's aliases, the models already known)
    with django_assert_max_num_queries(15):
        counts = ingest(deepinfra, Catalog(offers=offers))
    assert counts == {"seen": 5000, "added": 0, "changed": 1, "gone": 0}
    assert rewritten(before) == {"m/7"}
    assert Offer.objects.get(upstream_id="m/7").usd_per_1m_input == Decimal("0.9")


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
    scores = [o.gscore for o in Offer.objects.select_related("provider")]
    assert sum(s is not None for s in scores) > 20 and 100 in scores
    # One write per row: no offer was written again (by another transaction) to be scored.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(DISTINCT xmin::text) FROM {Offer._meta.db_table}")
        assert cursor.fetchone()[0] == 1


def test_the_roll_ups_written_in_one_statement_match_the_orm_s(gpu_cloud):
    """refresh_rollups (one statement, price bands by width_bucket) writes the rows the two
    models' own refreshes write: prices on an edge, between edges, over the top, none."""
    prices = ["0.0001", "0.00011", "1", "1.5", "2", "49999", "50000", "50000.5", None]
    offers = [
        gpu(
            f"g{i}",
            gpu_name,
            region=region,
            available=available,
            vram_gb=vram,
            usd_per_gpu_hour=usd(price) if price else None,
        )
        for i, (price, gpu_name, region, available, vram) in enumerate(
            (price, gpu_name, region, available, vram)
            for price in prices
            for gpu_name in ("H100", "A100")
            for region in ("US", "EU")
            for available in (True, False)
            for vram in (80.0, 40.0, None)
        )
    ]
    publish(gpu_cloud, *offers)  # refresh_rollups, as every poll

    def rows() -> tuple[set, set]:
        facets = OfferFacet.objects.filter(provider=gpu_cloud)
        bands = OfferPriceBand.objects.filter(provider=gpu_cloud)
        return (
            set(facets.values_list(*OfferFacet.COLUMNS, "offers", "key", "vram_low", "vram_high")),
            set(bands.values_list("key", "available", "upper", "offers")),
        )

    written = rows()
    assert len(written[0]) == 8 and len(written[1]) > 8
    OfferFacet.refresh(gpu_cloud)
    OfferPriceBand.refresh(gpu_cloud)
    assert rows() == written

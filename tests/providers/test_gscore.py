from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.db.models import F

from providers import gscore
from providers.adapters.base import Catalog, OfferIn
from providers.models import GpuModel, Offer
from providers.pipeline import ingest, poll_provider
from tests.conftest import rewritten, row_versions
from tests.providers.conftest import serve_akash, serve_vast

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("tflops", "price", "reliability", "expected"),
    [
        (100.0, "1.00", None, 100.0),  # no reliability reported: no penalty
        (100.0, "2.00", None, 50.0),  # twice the price, half the value
        (100.0, "1.00", 0.99, 97.0),
        (100.0, "1.00", 0.9, 70.0),  # each point under 100% costs 3%
        (100.0, "1.00", 0.5, 0.0),  # never negative
        (None, "1.00", 0.99, None),  # no spec-sheet figure
        (100.0, None, 0.99, None),  # no USD price (Render, Akash with no bids)
        (100.0, "0", None, None),
    ],
)
def test_it_values_compute_per_dollar_with_a_reliability_penalty(
    registry, tflops, price, reliability, expected
):
    gpu = GpuModel.objects.create(canonical="Test GPU", vendor="Test", bf16_tflops=tflops)
    ingest(registry["vastai"], Catalog(offers=[gpu_offer("x", gpu, price, reliability)]))
    value = Offer.objects.get().gscore_value
    assert value == (pytest.approx(expected) if expected is not None else None)


def test_it_scales_to_100_at_the_99th_percentile_so_an_outlier_cannot_squash_the_rest():
    values = [float(v) for v in range(1, 101)] + [10_000.0]  # 101 offers, one absurd
    assert gscore.scale(values) == 100.0  # the absurd one scores 100 too, the rest keep theirs
    assert gscore.scale([5.0]) == 5.0
    assert gscore.scale([]) is None


def gpu_offer(
    upstream_id: str, gpu: GpuModel, price: str | None, reliability: float | None = None
) -> OfferIn:
    return OfferIn(
        upstream_id=upstream_id,
        name=upstream_id,
        kind="gpu-compute",
        gpu_id=gpu.pk,
        gpu_name=gpu.canonical,
        gpu_count=1,
        usd_per_gpu_hour=Decimal(price) if price is not None else None,
        reliability=reliability,
    )


def shown_scores() -> dict[str, float | None]:
    """Each offer's G-Score as the marketplace shows it, by upstream id."""
    return {o.upstream_id: o.gscore for o in Offer.objects.select_related("provider")}


def test_it_orders_offers_by_compute_per_dollar(registry):
    h100 = GpuModel.objects.get(canonical="H100 SXM 80GB")  # 989.5 BF16 TFLOPS
    rtx4090 = GpuModel.objects.get(canonical="RTX 4090")  # 165.2
    v100 = GpuModel.objects.get(canonical="V100 32GB")  # no BF16: 125 FP16
    catalog = Catalog(
        offers=[
            gpu_offer("h100-cheap", h100, "2.00", 0.99),
            gpu_offer("h100-dear", h100, "3.00", 0.99),
            gpu_offer("h100-flaky", h100, "2.00", 0.90),
            gpu_offer("4090", rtx4090, "0.30", 0.99),
            gpu_offer("v100", v100, "0.30"),
        ]
    )
    ingest(registry["vastai"], catalog)
    scores = shown_scores()
    ranked = sorted(scores, key=scores.get, reverse=True)
    # 165.2/0.30×0.97 = 534 > 989.5/2×0.97 = 480 > 125/0.30 = 417 > 989.5/2×0.7 = 346
    # > 989.5/3×0.97 = 320
    assert ranked == ["4090", "h100-cheap", "v100", "h100-flaky", "h100-dear"]
    assert scores["4090"] == 100.0
    assert scores["h100-cheap"] == pytest.approx(100 * 480 / 534, abs=0.2)
    assert all(0 <= s <= 100 for s in scores.values())


def test_it_rescales_every_providers_gpu_offers_after_each_poll(registry, serve, httpserver):
    serve(registry["akash"])
    serve(registry["vastai"])
    serve_akash(httpserver)
    serve_vast(httpserver)
    poll_provider("akash")
    h100_alone = Offer.objects.get(upstream_id="nvidia/h100/80Gi/SXM5").gscore
    poll_provider("vastai")
    h100_among_vast = Offer.objects.get(upstream_id="nvidia/h100/80Gi/SXM5").gscore
    assert h100_alone is not None and h100_among_vast is not None
    assert h100_among_vast < h100_alone  # cheaper Vast RTX 4090s now set the scale
    best = Offer.objects.order_by(F("gscore_value").desc(nulls_last=True)).first()
    assert best.gscore == 100.0 and best.provider.slug == "vastai"


def test_it_scores_nothing_it_cannot_know_and_drops_scores_of_gone_offers(registry):
    h100 = GpuModel.objects.get(canonical="H100 SXM 80GB")
    unknown = OfferIn(upstream_id="p100", name="p100", kind="gpu-compute", gpu_name="p100")
    ingest(registry["vastai"], Catalog(offers=[gpu_offer("h100", h100, "2.00"), unknown]))
    assert shown_scores() == {"h100": 100.0, "p100": None}
    ingest(registry["vastai"], Catalog(offers=[unknown]))
    assert Offer.objects.get(upstream_id="h100").gscore is None  # no longer on sale


def shown_on_page(client, upstream_id: str) -> str:
    """The G-Score line of an offer's page ("Every field")."""
    offer = Offer.objects.get(upstream_id=upstream_id)
    page = client.get(f"/offers/{offer.pk}/").content.decode()
    return re.search(r"<dt>G-Score</dt><dd>(.*?)</dd>", page).group(1)


def h100_offers(**prices: str) -> Catalog:
    h100 = GpuModel.objects.get(canonical="H100 SXM 80GB")
    return Catalog(offers=[gpu_offer(key, h100, price) for key, price in prices.items()])


def test_a_repoll_that_moves_one_price_rescores_that_offer_and_writes_no_other(client, registry):
    vastai = registry["vastai"]
    ingest(vastai, h100_offers(top="1.00", a="2.00", b="4.00"))
    assert shown_scores() == {"top": 100.0, "a": 50.0, "b": 25.0}
    before = row_versions()
    ingest(vastai, h100_offers(top="1.00", a="1.60", b="4.00"))
    assert shown_scores() == {"top": 100.0, "a": 62.5, "b": 25.0}
    assert shown_on_page(client, "a") == "62.5"
    assert rewritten(before) == {"a"}


def test_a_price_move_that_shifts_the_scale_rescores_every_offer_without_writing_them(
    client, registry
):
    vastai = registry["vastai"]
    ingest(vastai, h100_offers(top="1.00", a="2.00", b="4.00"))
    before = row_versions()
    ingest(vastai, h100_offers(top="0.50", a="2.00", b="4.00"))  # the best got twice as good
    assert shown_scores() == {"top": 100.0, "a": 25.0, "b": 12.5}
    assert shown_on_page(client, "b") == "12.5"
    assert rewritten(before) == {"top"}


def test_offers_capped_at_100_sort_by_their_value(client, registry):
    """Past the 99th percentile every offer shows 100; the best value still comes first."""
    h100 = GpuModel.objects.get(canonical="H100 SXM 80GB")
    prices = {f"o{i:03}": f"{2 + i / 100:.2f}" for i in range(150)}  # o000 is the cheapest
    offers = [gpu_offer(key, h100, price) for key, price in reversed(prices.items())]
    ingest(registry["vastai"], Catalog(offers=offers))  # the best value written last
    capped = [key for key, score in shown_scores().items() if score == 100.0]
    assert sorted(capped) == ["o000", "o001"]  # the nearest-rank 99th percentile of 150 is #149
    first = client.get("/?sort=gscore&view=table").context["offers"][:2]  # the rows as offers
    assert [o.upstream_id for o in first] == ["o000", "o001"]  # not in order of id


def test_the_explanation_states_the_formula():
    assert "BF16 TFLOPS" in gscore.EXPLANATION and "per GPU-hour" in gscore.EXPLANATION
    assert "3%" in gscore.EXPLANATION and "100" in gscore.EXPLANATION


def test_the_offer_page_explains_the_g_score_in_its_tooltip(client, vastai):
    _provider, server = vastai
    serve_vast(server)
    poll_provider("vastai")
    best = Offer.objects.order_by(F("gscore_value").desc(nulls_last=True)).first()
    page = client.get(f"/offers/{best.pk}/").content.decode()
    assert "G-Score 100</span>" in page
    assert 'title="G-Score: GPU compute per dollar' in page

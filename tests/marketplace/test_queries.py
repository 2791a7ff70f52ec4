"""Query counts are part of the contract: the page costs the same whatever it lists."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from providers.models import Offer, PriceChange
from tests.marketplace.conftest import days_ago, gpu, llm, publish, usd

pytestmark = pytest.mark.django_db
MAX_QUERIES = 6  # providers, facet roll-up, refined counts, one page of offers, price history
URLS = [
    ("/", {}),
    ("/?q=m&min_context=1000&sort=throughput", {"HX-Request": "true"}),
    ("/?kind=gpu&min_vram=24&max_price=5&sort=gscore", {"HX-Request": "true"}),
    ("/?provider=deepinfra&provider=gpucloud&region=us&sort=newest&page=2", {}),
]


def fill(registry, gpu_cloud, n: int) -> None:
    """n LLM and n GPU offers, each polled three times with moving prices."""
    for step, at in enumerate((days_ago(2), days_ago(1), None)):
        price = Decimal(3 - step)
        publish(
            registry["deepinfra"],
            *(llm(f"m/{i}", region="us", usd_per_1m_input=price + i) for i in range(n)),
            at=at,
        )
        publish(
            gpu_cloud,
            *(gpu(str(i), "H100 SXM 80GB", usd_per_gpu_hour=price + i) for i in range(n)),
            at=at,
        )


def queries(client, url: str, headers: dict) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url, headers=headers).status_code == 200
    return len(captured)


@pytest.mark.parametrize(("url", "headers"), URLS)
def test_the_page_does_not_query_per_offer(client, registry, gpu_cloud, url, headers):
    fill(registry, gpu_cloud, 3)
    few = queries(client, url, headers)
    fill(registry, gpu_cloud, 40)
    assert PriceChange.objects.count() >= 160
    assert queries(client, url, headers) == few <= MAX_QUERIES


def test_the_page_stays_within_its_query_budget(
    client, registry, gpu_cloud, django_assert_max_num_queries
):
    fill(registry, gpu_cloud, 30)
    for url, headers in URLS:
        with django_assert_max_num_queries(MAX_QUERIES):
            client.get(url, headers=headers)


def test_the_offer_page_costs_two_queries(client, registry, django_assert_num_queries):
    publish(registry["deepinfra"], llm("a/model", usd_per_1m_input=usd("1")), at=days_ago(1))
    publish(registry["deepinfra"], llm("a/model", usd_per_1m_input=usd("2")))
    offer = Offer.objects.get()
    with django_assert_num_queries(2):
        client.get(f"/offers/{offer.pk}/")

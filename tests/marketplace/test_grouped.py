"""The marketplace's grouped view: one card per model (the default for LLM offers) or per GPU
model, each opening (HTMX, or a plain link) onto its offers."""

from __future__ import annotations

import re

from tests.marketplace.conftest import gpu, names, publish, usd


def cards(response) -> list[str]:
    return re.findall(
        r'<article class="card group-card">(.*?)</article>', response.content.decode(), re.S
    )


def test_llm_offers_are_one_card_per_model_by_default(client, recorded_world):
    response = client.get("/?kind=llm&q=gpt-oss-120b")
    (card,) = cards(response)
    assert '<a href="/models/openai/gpt-oss-120b/">openai/gpt-oss-120b</a>' in card
    assert re.search(
        r"3 providers · from <strong>\$[\d.]+</strong> in / <strong>\$[\d.]+</strong> out", card
    )
    assert 'hx-get="/models/openai/gpt-oss-120b/"' in card
    assert "one card per model" in response.content.decode()


def test_a_model_card_opens_onto_its_offers_as_a_fragment(client, recorded_world):
    response = client.get("/models/openai/gpt-oss-120b/", headers={"HX-Request": "true"})
    body = response.content.decode()
    assert "<html" not in body and body.count("<tr") == 10  # a header and nine offers
    assert "HX-Request" in response["Vary"]


def test_gpu_offers_group_by_gpu_model_with_their_price_span(client, world):
    publish(
        world["gpucloud"],
        gpu("1", "H100 SXM 80GB", usd_per_gpu_hour=usd("2.10")),
        gpu("2", "H100 SXM 80GB", usd_per_gpu_hour=usd("2.90")),
        gpu("3", "RTX 4090", usd_per_gpu_hour=usd("0.35")),
    )
    found = cards(client.get("/?kind=gpu&group=gpu"))
    assert "RTX 4090" in found[0]  # cheapest group first
    assert "2 offers at 1 provider · <strong>$2.10–$2.90</strong>" in found[1]


def test_one_card_per_offer_is_a_choice_away(client, world):
    response = client.get("/?kind=llm&group=offer")
    assert not cards(response)
    assert "meta-llama/Llama-3.3-70B-Instruct" in names(response)


def test_a_grouped_page_is_a_bounded_number_of_queries(
    client, recorded_world, django_assert_max_num_queries
):
    with django_assert_max_num_queries(10):
        assert client.get("/?kind=llm").status_code == 200


def test_a_grouped_page_seen_once_is_kept_until_the_next_poll(
    client, world, django_assert_num_queries
):
    publish(world["gpucloud"], gpu("1", "H100 SXM 80GB", usd_per_gpu_hour=usd("2.10")))
    client.get("/?kind=gpu&group=gpu")
    with django_assert_num_queries(1):  # the provider rows: the groups are kept (a GROUP BY
        found = cards(client.get("/?kind=gpu&group=gpu"))  # over every match otherwise)
    assert len(found) == 1
    publish(
        world["gpucloud"],
        gpu("1", "H100 SXM 80GB", usd_per_gpu_hour=usd("2.10")),
        gpu("2", "RTX 4090", usd_per_gpu_hour=usd("0.35")),
    )
    found = cards(client.get("/?kind=gpu&group=gpu"))
    assert "RTX 4090" in found[0] and len(found) == 2  # the poll's offers, not the kept page

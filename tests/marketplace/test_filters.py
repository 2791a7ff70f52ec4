from __future__ import annotations

from decimal import Decimal

import pytest
from django.db.models import F

from marketplace.filters import PAGE_SIZE, dom_id
from providers.models import Offer
from tests.marketplace.conftest import days_ago, facet_count, gpu, llm, names, publish, usd

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}
GPUS = {"8× H100 SXM 80GB", "1× RTX 4090", "1× A100 PCIe 40GB"}


def test_it_filters_by_one_or_several_providers(client, world):
    only_hf = names(client.get("/?provider=huggingface"))
    assert set(only_hf) == {"Qwen/Qwen3-32B", "mistralai/Mistral-7B"}
    both = names(client.get("/?provider=huggingface&provider=gpucloud"))
    assert set(both) == set(only_hf) | GPUS


def test_it_filters_by_one_or_several_regions(client, world):
    assert set(names(client.get("/?region=Norway"))) == {"1× RTX 4090"}
    assert set(names(client.get("/?region=Norway&region=EU"))) == {
        "1× RTX 4090",
        "1× A100 PCIe 40GB",
    }


def test_it_filters_by_task(client, world):
    assert names(client.get("/?task=embedding")) == ["BAAI/bge-m3"]


def test_it_filters_by_kind(client, world):
    assert set(names(client.get("/?kind=gpu"))) == GPUS
    assert not GPUS & set(names(client.get("/?kind=llm&group=offer")))


def test_it_filters_by_gpu_model(client, world):
    assert names(client.get("/?gpu=RTX+4090")) == ["1× RTX 4090"]


def test_it_filters_by_minimum_vram(client, world):
    assert set(names(client.get("/?min_vram=40"))) == {"8× H100 SXM 80GB", "1× A100 PCIe 40GB"}


def test_max_price_is_in_each_kinds_own_unit(client, world):
    # GPUs per GPU-hour (a range by its low end), LLMs per 1M input tokens, images per image.
    assert set(names(client.get("/?kind=gpu&max_price=0.8"))) == {
        "1× RTX 4090",
        "1× A100 PCIe 40GB",
    }
    assert set(names(client.get("/?kind=llm&max_price=0.25&group=offer"))) == {
        "meta-llama/Llama-3.3-70B-Instruct",
        "BAAI/bge-m3",
        "black-forest-labs/FLUX-1-schnell",
    }


def test_an_offer_with_an_unknown_price_never_passes_a_price_ceiling(client, world):
    assert "mistralai/Mistral-7B" not in names(client.get("/?max_price=1000"))


def test_it_filters_by_minimum_context_length(client, world):
    assert set(names(client.get("/?min_context=100000"))) == {"meta-llama/Llama-3.3-70B-Instruct"}


def test_it_searches_names_case_insensitively(client, world):
    assert names(client.get("/?q=QWEN")) == ["Qwen/Qwen3-32B"]


def test_it_combines_filters(client, world):
    response = client.get("/?kind=llm&group=offer&provider=deepinfra&task=text&max_price=1&q=llama")
    assert names(response) == ["meta-llama/Llama-3.3-70B-Instruct"]


@pytest.mark.parametrize(
    ("sort", "first"),
    [
        ("price", "black-forest-labs/FLUX-1-schnell"),  # $0.0005 per image
        ("throughput", "Qwen/Qwen3-32B"),  # 88 tokens/s
        ("context", "meta-llama/Llama-3.3-70B-Instruct"),  # 131,072 tokens
    ],
)
def test_it_sorts(client, world, sort, first):
    assert names(client.get(f"/?sort={sort}"))[0] == first


def test_it_sorts_by_g_score_highest_first_with_unscored_offers_last(client, world):
    from providers.models import Offer

    Offer.objects.filter(gpu_name="RTX 4090").update(gscore_value=40)
    Offer.objects.filter(gpu_name="H100 SXM 80GB").update(gscore_value=90)
    assert names(client.get("/?sort=gscore"))[:2] == ["8× H100 SXM 80GB", "1× RTX 4090"]


def test_it_sorts_newest_first(client, world):
    publish(world["deepinfra"], llm("brand/new-model", usd_per_1m_input=usd("9")))
    assert names(client.get("/?sort=newest"))[0] == "brand/new-model"


def test_it_counts_offers_beside_each_option_given_the_other_filters(client, world):
    response = client.get("/?provider=deepinfra")
    # A provider's count ignores the provider filter itself: what ticking it would add.
    assert facet_count(response, "provider", "deepinfra") == 4
    assert facet_count(response, "provider", "huggingface") == 2
    assert facet_count(response, "provider", "gpucloud") == 3
    # Other facets count within the chosen provider.
    assert facet_count(response, "kind", "llm") == 4
    assert facet_count(response, "kind", "gpu") == 0
    assert facet_count(response, "task", "embedding") == 1
    assert facet_count(response, "gpu", "RTX 4090") == 0


def test_counts_follow_the_search_and_limits_too(client, world):
    response = client.get("/?min_vram=40")
    assert facet_count(response, "provider", "gpucloud") == 2
    assert facet_count(response, "provider", "deepinfra") == 0
    assert facet_count(response, "region", "Norway") == 0


def test_counts_leave_out_offers_gone_from_the_last_poll(client, world):
    publish(
        world["gpucloud"],
        gpu("1002", "RTX 4090", vram_gb=24.0, usd_per_gpu_hour=usd("0.35"), region="Norway"),
    )
    assert facet_count(client.get("/"), "provider", "gpucloud") == 1
    assert facet_count(client.get("/?unavailable=1"), "provider", "gpucloud") == 3


# Priced on, just over and between the 1-2-5 band edges the counts under a ceiling add up.
BAND_PRICES = ["0.00004", "0.5", "1", "1.000001", "2", "2.5", "3", "3.01", "60000", None]


@pytest.mark.parametrize("ceiling", ["0.00001", "0.00004", "1", "2", "3", "4.99", "100000"])
def test_counts_under_a_price_ceiling_are_right_on_and_between_band_edges(
    client, gpu_cloud, ceiling
):
    def offers(gone: set[int] = frozenset(), scale=1):
        for i, price in enumerate(BAND_PRICES):
            if i not in gone:
                usd_per_gpu_hour = usd(price) * scale if price else None
                for name in ("RTX 4090", "A100 PCIe 40GB"):
                    yield gpu(f"{name}-{i}", name, usd_per_gpu_hour=usd_per_gpu_hour)

    def under(limit: str, gone: set[int] = frozenset(), scale=1) -> int:
        prices = [usd(p) * scale for i, p in enumerate(BAND_PRICES) if p and i not in gone]
        return sum(price <= usd(limit) for price in prices)

    publish(gpu_cloud, *offers(), at=days_ago(1))
    publish(gpu_cloud, *offers(gone={1, 4}))  # two prices gone from the last poll
    response = client.get(f"/?max_price={ceiling}")
    assert facet_count(response, "gpu", "RTX 4090") == under(ceiling, gone={1, 4})
    assert facet_count(response, "provider", "gpucloud") == 2 * under(ceiling, gone={1, 4})
    shown = client.get(f"/?max_price={ceiling}&unavailable=1")
    assert facet_count(shown, "gpu", "A100 PCIe 40GB") == under(ceiling)
    # A re-poll moving every price: the counts follow it.
    publish(gpu_cloud, *offers(gone={1, 4}, scale=Decimal("1.5")))
    moved = client.get(f"/?max_price={ceiling}&gpu=RTX+4090")
    assert facet_count(moved, "gpu", "RTX 4090") == under(ceiling, {1, 4}, Decimal("1.5"))


# (GPU model, VRAM GB, USD per GPU-hour): RTX 6000 offers at several sizes (and one stating
# none), so "at least N GB" splits that model's offers; the others all pass or all fail.
VRAM_OFFERS = [
    ("RTX 6000", 24.0, "0.5"),
    ("RTX 6000", 48.0, "0.8"),
    ("RTX 6000", 48.0, "2.5"),
    ("RTX 6000", None, "0.6"),
    ("H100 SXM 80GB", 79.6, "1.9"),
    ("H100 SXM 80GB", 80.0, "2.6"),
    ("RTX 4090", 24.0, "0.3"),
]


@pytest.mark.parametrize(
    "query", ["min_vram=40", "min_vram=80", "min_vram=40&max_price=2", "min_vram=24&max_price=2.55"]
)
def test_counts_under_a_vram_minimum_count_each_offer_of_a_mixed_gpu_model(
    client, gpu_cloud, query
):
    def offers(gone: int | None = None):
        for i, (name, vram, price) in enumerate(VRAM_OFFERS):
            if i != gone:
                yield gpu(f"v{i}", name, vram_gb=vram, usd_per_gpu_hour=usd(price))

    def expected(name: str, gone: int | None = None) -> int:
        limits = dict(pair.split("=") for pair in query.split("&"))
        return sum(
            model == name
            and vram is not None
            and vram >= float(limits["min_vram"]) - 0.5
            and usd(price) <= usd(limits.get("max_price", "1000"))
            for i, (model, vram, price) in enumerate(VRAM_OFFERS)
            if i != gone
        )

    publish(gpu_cloud, *offers(), at=days_ago(1))
    publish(gpu_cloud, *offers(gone=1))  # the 48 GB RTX 6000 at $0.80 is gone
    response = client.get(f"/?{query}")
    shown = client.get(f"/?{query}&unavailable=1")
    for name in ("RTX 6000", "H100 SXM 80GB", "RTX 4090"):
        assert facet_count(response, "gpu", name) == expected(name, gone=1), name
        assert facet_count(shown, "gpu", name) == expected(name), name


def test_the_htmx_request_gets_only_the_results_with_fresh_counts(client, world):
    response = client.get("/?provider=deepinfra", headers=HTMX)
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="results"')
    assert "<html" not in body and '<form id="filters"' not in body
    assert f'<span class="n" id="{dom_id("kind", "gpu")}" hx-swap-oob="true">0</span>' in body
    assert response["Vary"] == "HX-Request"


def test_a_full_page_and_a_history_restore_get_the_whole_page(client, world):
    for headers in ({}, {**HTMX, "HX-History-Restore-Request": "true"}):
        body = client.get("/?provider=deepinfra", headers=headers).content.decode()
        assert "<html" in body and '<form id="filters"' in body
        assert "hx-swap-oob" not in body


def test_the_form_works_without_javascript_and_swaps_results_with_it(client, world):
    body = client.get("/").content.decode()
    assert '<form id="filters" class="filters" method="get" action="/"' in body
    assert 'hx-get="/" hx-target="#results"' in body and 'hx-push-url="true"' in body
    assert '<button type="submit">' in body
    assert 'hx-trigger="input changed delay:400ms, search"' in body


def test_the_pushed_url_is_the_canonical_filter_state(client, world):
    response = client.get(
        "/?q=&provider=deepinfra&region=&sort=price&max_price=1.50&min_vram=&page=1", headers=HTMX
    )
    assert response["HX-Push-Url"] == "/?provider=deepinfra&max_price=1.5"


def test_it_pages_through_results_keeping_the_filters(client, registry):
    offers = [llm(f"m/{i:03}", usd_per_1m_input=usd(str(1 + i))) for i in range(PAGE_SIZE + 5)]
    publish(registry["deepinfra"], *offers)
    first = client.get("/?provider=deepinfra&sort=price")
    assert names(first)[0] == "m/000" and len(names(first)) == PAGE_SIZE
    assert 'href="?provider=deepinfra&amp;page=2"' in first.content.decode()
    second = client.get("/?provider=deepinfra&page=2")
    assert names(second) == [f"m/{i:03}" for i in range(PAGE_SIZE, PAGE_SIZE + 5)]
    assert 'href="?provider=deepinfra"' in second.content.decode()  # back to page 1


@pytest.mark.parametrize(
    ("query", "ignored"),
    [
        ("provider=nosuchprovider", "provider=nosuchprovider"),
        ("max_price=abc", "max_price=abc"),
        ("min_vram=-1", "min_vram=-1"),
        ("min_context=1e999", "min_context=1e999"),
        ("sort=cheapest", "sort=cheapest"),
        ("kind=quantum", "kind=quantum"),
        ("task=nope", "task=nope"),
        ("gpu=Voodoo2", "gpu=Voodoo2"),
        ("page=abc", "page=abc"),
        ("page=" + "9" * 5000, "page=" + "9" * 40),
        ("unavailable=maybe", None),  # any value but "false"-like means "show them"
    ],
)
def test_bad_values_are_ignored_and_the_page_says_so(client, world, query, ignored):
    response = client.get(f"/?{query}")
    assert response.status_code == 200
    body = response.content.decode()
    if ignored:
        assert "Ignored values that are not valid here" in body and ignored in body
    assert "meta-llama/Llama-3.3-70B-Instruct" in names(response)


def test_unavailable_0_or_false_in_a_url_keeps_gone_offers_hidden(client, world):
    publish(
        world["gpucloud"],
        gpu("1002", "RTX 4090", vram_gb=24.0, usd_per_gpu_hour=usd("0.35"), region="Norway"),
    )
    for value in ("0", "false", "off", ""):
        assert "8× H100 SXM 80GB" not in names(client.get(f"/?unavailable={value}")), value
    assert "8× H100 SXM 80GB" in names(client.get("/?unavailable=1"))


def test_a_bad_value_is_named_without_its_control_characters(client, world):
    response = client.get("/?q=%00llama&min_vram=8%0a0")
    body = response.content.decode()
    assert r"Ignored values that are not valid here: q=\x00llama, min_vram=8\n0." in body
    assert "\x00" not in body
    assert "meta-llama/Llama-3.3-70B-Instruct" in names(response)


def test_the_max_price_unit_follows_the_kind_chosen(client, world):
    body = client.get("/?kind=gpu", headers=HTMX).content.decode()
    assert '<small id="price-unit" hx-swap-oob="true">(USD per GPU-hour)</small>' in body
    body = client.get("/?kind=llm").content.decode()
    assert '<small id="price-unit">(USD per 1M input tokens or per image)</small>' in body


def test_a_known_provider_next_to_an_unknown_one_still_filters(client, world):
    response = client.get("/?provider=huggingface&provider=<b>nope</b>")
    assert set(names(response)) == {"Qwen/Qwen3-32B", "mistralai/Mistral-7B"}
    assert "provider=&lt;b&gt;nope&lt;/b&gt;" in response.content.decode()


def test_a_page_past_the_end_shows_the_last_page_and_says_so(client, world):
    response = client.get("/?page=100000000000000000000")
    assert response.status_code == 200
    assert "There is no page 100000000000000000000; showing page 1 of 1." in (
        response.content.decode()
    )
    assert names(response)


def test_no_match_says_so_and_offers_a_way_back(client, world):
    body = client.get("/?q=no-such-model-anywhere").content.decode()
    assert "No offers match." in body and "start over</a>" in body


@pytest.mark.parametrize("sort", ["price", "throughput", "gscore", "context", "newest"])
def test_a_narrow_choice_lists_the_same_pages_as_a_broad_one(client, gpu_cloud, settings, sort):
    """A choice of few offers is found first, then sorted; a broad one by walking the sort
    order (docs/performance.md). Either way the pages are the same."""
    cheap = [gpu(f"c{i}", "RTX 4090", usd_per_gpu_hour=usd("0.30") + i) for i in range(30)]
    dear = [
        gpu(f"h{i}", "H100 SXM 80GB", usd_per_gpu_hour=usd("2") + i % 7, gpu_count=1 + i % 3)
        for i in range(PAGE_SIZE + 6)
    ]
    publish(gpu_cloud, *cheap, *dear)
    Offer.objects.filter(gpu_name="H100 SXM 80GB").update(gscore_value=F("id") % 5 * 10)
    query = f"/?provider=gpucloud&gpu=H100+SXM+80GB&max_price=7&sort={sort}"
    pages = {}
    for narrow in (0, 10**9):  # every choice broad / every choice narrow
        settings.MARKETPLACE_NARROW_CHOICE = narrow
        pages[narrow] = [names(client.get(f"{query}&page={n}")) for n in (1, 2)]
    assert pages[0] == pages[10**9]
    assert sum(map(len, pages[0])) == PAGE_SIZE + 6 - 4  # $8 offers (i % 7 == 6) left out
    if sort == "price":
        assert pages[0][0][:3] == ["1× H100 SXM 80GB", "2× H100 SXM 80GB", "3× H100 SXM 80GB"]

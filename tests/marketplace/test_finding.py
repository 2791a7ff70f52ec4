"""Finding an offer the way renters look: a dense table, their filters, their sorts, and a
plain answer when filters can never match together."""

from __future__ import annotations

import re

import pytest

from tests.marketplace.conftest import gpu, llm, names, publish, usd

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


@pytest.fixture
def rigs(gpu_cloud, registry):
    publish(
        gpu_cloud,
        gpu("a", "H100 SXM 80GB", gpu_count=8, usd_per_gpu_hour=usd("2.40"), disk_gb=2000.0,
            reliability=0.995, interruptible=False, country="US", verified=True,
            cuda_version=12.8),
        gpu("b", "RTX 4090", vram_gb=24.0, usd_per_gpu_hour=usd("0.36"), disk_gb=100.0,
            reliability=0.91, interruptible=True, country="NO", verified=False,
            cuda_version=12.2),
        gpu("c", "A100 PCIe 40GB", vram_gb=40.0, usd_per_gpu_hour=usd("1.20"), country="DE"),
    )  # fmt: skip
    publish(
        registry["deepinfra"],
        llm("x/cheap-in", usd_per_1m_input=usd("0.10"), usd_per_1m_output=usd("0.90")),
        llm("x/cheap-out", usd_per_1m_input=usd("0.20"), usd_per_1m_output=usd("0.30")),
    )
    return gpu_cloud


def rows(response) -> list[str]:
    """The table's first cells (offer names), in order."""
    table = response.content.decode().split('<table class="offer-table">')[1]
    return re.findall(r'<tr class="[^"]*">\s*<td><a href="/offers/\d+/">(.*?)</a>', table)


def test_the_table_view_lists_one_row_per_offer_with_the_same_filters(client, rigs):
    response = client.get("/?view=table&kind=gpu")
    assert rows(response) == ["1× RTX 4090", "1× A100 PCIe 40GB", "8× H100 SXM 80GB"]
    body = response.content.decode()
    assert 'class="cards phone-only"' in body  # phones keep the cards
    assert '<a href="?kind=gpu&amp;view=table&amp;sort=vram_price"' in body  # a sortable header
    assert "Output /1M" not in body  # no GPU offer has one: the column is left out
    assert (
        '<a href="?kind=llm&amp;view=table&amp;sort=output"'
        in client.get("/?view=table&kind=llm").content.decode()
    )
    assert '<a href="?kind=gpu" hx-get="?kind=gpu">Cards</a>' in body


def test_the_table_is_remembered_in_the_url_and_the_form(client, rigs):
    body = client.get("/?view=table&sort=vram_price", headers=HTMX).content.decode()
    assert 'id="view-input" value="table" hx-swap-oob="true"' in body
    assert response_url(client, "/?view=table&sort=vram_price") == "/?view=table&sort=vram_price"
    assert 'id="view-input" value=""' in client.get("/").content.decode()


def response_url(client, url: str) -> str:
    return client.get(url, headers=HTMX)["HX-Push-Url"]


def test_it_sorts_by_output_price_and_by_price_per_vram_gb(client, rigs):
    assert names(client.get("/?kind=llm&sort=output"))[:2] == ["x/cheap-out", "x/cheap-in"]
    # $0.36 / 24 GB = $0.015, $1.20 / 40 GB = $0.03, $2.40 / 80 GB = $0.03 (ties by id)
    assert rows(client.get("/?view=table&kind=gpu&sort=vram_price"))[0] == "1× RTX 4090"
    assert "$0.015" in client.get("/?view=table&kind=gpu").content.decode()


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("rent=interruptible", ["1× RTX 4090"]),
        ("rent=on-demand", ["8× H100 SXM 80GB"]),  # A100: the provider does not say
        ("min_reliability=95", ["8× H100 SXM 80GB"]),
        ("country=NO&country=DE", ["1× RTX 4090", "1× A100 PCIe 40GB"]),
        ("min_disk=500", ["8× H100 SXM 80GB"]),
        ("min_gpus=2", ["8× H100 SXM 80GB"]),
        ("min_cuda=12.4", ["8× H100 SXM 80GB"]),
        ("verified=1", ["8× H100 SXM 80GB"]),  # the A100's provider does not say
    ],
)
def test_renter_filters_pass_only_offers_that_state_the_field(client, rigs, query, found):
    assert names(client.get(f"/?kind=gpu&{query}")) == found


def test_filters_that_can_never_match_together_say_so(client, rigs):
    body = client.get("/?task=text&gpu=RTX+4090").content.decode()
    assert "These filters can never match together." in body
    assert "Task only matches LLM offers, and GPU model only GPU offers." in body
    assert "No offers match." not in body
    body = client.get("/?kind=llm&min_reliability=90", headers=HTMX).content.decode()
    assert "Min reliability only matches GPU offers, and Kind is “LLM inference”." in body


def test_a_combination_that_could_match_is_not_called_impossible(client, rigs):
    body = client.get("/?kind=gpu&min_gpus=64").content.decode()
    assert "No offers match." in body and "never match together" not in body

from __future__ import annotations

import copy
from decimal import Decimal

import pytest

from resilience import errors
from tests.conftest import by_id, payload
from tests.providers.conftest import serve_akash

pytestmark = pytest.mark.django_db

RPC_STATUS = {
    "jsonrpc": "2.0",
    "id": -1,
    "result": {
        "node_info": {"network": "akashnet-2"},
        "sync_info": {
            "latest_block_height": "23456789",
            "latest_block_time": "2026-11-23T12:00:00Z",
            "catching_up": False,
        },
    },
}


def test_it_shows_the_bid_market_as_a_range_with_its_median(akash):
    provider, server = akash
    serve_akash(server)
    h100 = by_id(provider.adapter().list_models())["nvidia/h100/80Gi/SXM5"]
    assert (h100.usd_per_gpu_hour_min, h100.usd_per_gpu_hour_max) == (
        Decimal("1.18"),
        Decimal("1.95"),
    )
    assert h100.usd_per_gpu_hour == Decimal("1.44")  # the median, for sorting
    assert h100.usd_per_instance_hour is None  # the lease's other resources are yours to pick
    assert "Market range, not a quote" in h100.price_note and "median $1.44" in h100.price_note
    assert h100.gpu_name == "H100 SXM 80GB" and h100.gpu_count == 1 and h100.vram_gb == 80
    assert h100.availability_count == 41 and h100.available


def test_it_keeps_a_gpu_with_no_bids_at_an_unknown_price_never_zero(akash):
    provider, server = akash
    serve_akash(server)
    catalog = provider.adapter().list_models()
    p100 = by_id(catalog)["nvidia/p100/16Gi/PCIe"]
    assert p100.usd_per_gpu_hour is None and p100.usd_per_gpu_hour_min is None
    assert "price unknown" in p100.price_note
    assert p100.gpu_name == "p100" and p100.gpu_id is None  # not in the catalog: kept as spelt
    assert catalog.unknown_gpus == {"p100": 1}


def test_it_tolerates_a_missing_interface_and_a_missing_price_key(akash):
    provider, server = akash
    body = payload("akash/gpu_prices.json")
    t4 = next(m for m in body["models"] if m["model"] == "t4")
    del t4["price"], t4["availability"]
    serve_akash(server, body)
    offers = by_id(provider.adapter().list_models())
    h200 = offers["nvidia/h200/141Gi/"]  # no interface key
    assert h200.gpu_name == "H200 141GB" and h200.usd_per_gpu_hour == Decimal("2.55")
    t4_offer = offers["nvidia/t4/16Gi/PCIe"]
    assert t4_offer.usd_per_gpu_hour is None and t4_offer.availability_count is None


def test_it_skips_a_row_without_a_model_and_ignores_uakt_prices(akash):
    provider, server = akash
    body = payload("akash/gpu_prices.json")
    del body["models"][0]["model"]
    body["models"][1]["price"] = {"currency": "uakt", "min": 1, "max": 2, "med": 1.5}
    serve_akash(server, body)
    catalog = provider.adapter().list_models()
    assert catalog.skipped == 1 and len(catalog.offers) == len(body["models"]) - 1
    a100 = by_id(catalog)["nvidia/a100/80Gi/SXM4"]
    assert a100.usd_per_gpu_hour is None  # not USD: never converted by guesswork


def test_it_marks_a_gpu_with_nothing_free_unavailable(akash):
    provider, server = akash
    body = payload("akash/gpu_prices.json")
    body["models"][0]["availability"]["available"] = 0
    serve_akash(server, body)
    offer = by_id(provider.adapter().list_models())["nvidia/a100/40Gi/PCIe"]
    assert offer.available is False and offer.availability_count == 0


def test_it_rejects_a_body_without_models(akash):
    provider, server = akash
    serve_akash(server, {"availability": {"total": 0, "available": 0}})
    with pytest.raises(errors.BadPayload, match="no models list"):
        provider.adapter().list_models()


def test_health_check_reads_the_chain_height_from_akash_rpc_url(akash):
    provider, server = akash
    serve_akash(server)
    server.expect_request("/status").respond_with_json(RPC_STATUS)
    result = provider.adapter().health_check()
    assert "block 23456789" in result.detail


def test_health_check_fails_while_the_rpc_node_catches_up(akash):
    provider, server = akash
    serve_akash(server)
    status = copy.deepcopy(RPC_STATUS)
    status["result"]["sync_info"]["catching_up"] = True
    server.expect_request("/status").respond_with_json(status)
    with pytest.raises(errors.Transient, match="catching up"):
        provider.adapter().health_check()


def test_renting_points_at_the_console(akash):
    provider, _ = akash
    with pytest.raises(errors.NotSupported, match=r"https://console\.akash\.network"):
        provider.adapter().rent("an-offer", {})


@pytest.mark.parametrize(
    ("price", "shown", "note"),
    [
        (
            {"min": None, "max": None, "avg": None, "weightedAverage": None, "med": None},
            None,
            "price unknown",
        ),
        ({"min": 0.5, "max": None, "med": None}, None, "price unknown"),  # half a range is none
        ({"min": 0.5, "max": 0.9, "med": None}, ("0.5", "0.9", None), "(last 31 days), incl."),
        ({"med": 0.7}, (None, None, "0.7"), "median $0.7/GPU-hour"),
    ],
)
def test_it_never_shows_a_null_price_figure_as_a_number(akash, price, shown, note):
    provider, server = akash
    body = payload("akash/gpu_prices.json")
    t4 = next(m for m in body["models"] if m["model"] == "t4")
    t4["price"] = {"currency": "USD", **price}
    serve_akash(server, body)
    offer = by_id(provider.adapter().list_models())["nvidia/t4/16Gi/PCIe"]
    figures = (offer.usd_per_gpu_hour_min, offer.usd_per_gpu_hour_max, offer.usd_per_gpu_hour)
    expected = (None, None, None) if shown is None else shown
    assert figures == tuple(None if v is None else Decimal(v) for v in expected)
    assert note in offer.price_note and "None" not in offer.price_note

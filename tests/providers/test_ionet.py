from __future__ import annotations

import json
from decimal import Decimal

import pytest

from providers.models import Offer
from providers.pipeline import poll_provider
from resilience import errors
from tests.conftest import by_id, payload
from tests.providers.conftest import serve_ionet

pytestmark = pytest.mark.django_db


def test_it_fails_with_missing_key_and_calls_nothing_without_one(registry, serve):
    provider = registry["ionet"]
    server = serve(provider)
    with pytest.raises(errors.MissingKey, match="IONET_API_KEY"):
        provider.adapter().list_models()
    assert server.log == []
    assert provider.test_connection().status == "no key"


def test_it_sends_the_key_as_x_api_key(ionet):
    provider, server = ionet
    serve_ionet(server)
    provider.adapter().list_models()
    assert server.log[0][0].headers["x-api-key"] == "io-test-key-5678"


def test_it_divides_the_configuration_price_per_gpu(ionet):
    provider, server = ionet
    serve_ionet(server)
    offers = by_id(provider.adapter().list_models())
    one, two = offers["12__1"], offers["12__2"]
    assert one.usd_per_gpu_hour == two.usd_per_gpu_hour == Decimal("0.3")
    assert two.usd_per_instance_hour == Decimal("0.6") and two.gpu_count == 2
    h100x8 = offers["8H100.80S.176V__FI"]
    assert h100x8.usd_per_gpu_hour == Decimal("3.484418")  # 27.875342465753423 / 8
    assert (h100x8.gpu_name, h100x8.country, h100x8.region) == ("H100 SXM 80GB", "FI", "eu")


def test_it_names_gpus_by_interconnect_and_keeps_an_undecidable_h100(ionet):
    provider, server = ionet
    serve_ionet(server)
    catalog = provider.adapter().list_models()
    offers = by_id(catalog)
    assert offers["8A100.80S.240V__US"].gpu_name == "A100 SXM 80GB"
    assert offers["B200_sxm6x8__US"].gpu_name == "B200"
    assert offers["12__1"].gpu_name == "RTX 4090"
    pcie = offers["1H100.80P.24V__CA"]  # interconnect null: SXM or PCIe cannot be told
    assert pcie.gpu_name == "H100" and pcie.gpu_id is None
    assert catalog.unknown_gpus == {"H100": 1}


def test_it_leaves_out_cpu_only_vms_and_marks_sold_out_ones(ionet):
    provider, server = ionet
    serve_ionet(server)
    offers = by_id(provider.adapter().list_models())
    assert "1CPU__US" not in offers
    sold_out = offers["12__8"]
    assert sold_out.available is False and sold_out.availability_count == 0
    sparse = offers["1A6000.32V__SG"]  # no vram, vcpu, memory or sold_out keys
    assert sparse.available and sparse.gpu_name == "RTX A6000"
    assert (sparse.vram_gb, sparse.vram_reported_gb) == (48, None)  # the spec sheet's size


def test_it_keeps_a_configuration_without_a_price_at_an_unknown_price(ionet):
    provider, server = ionet
    body = payload("ionet/hardware.json")
    body["data"]["hardware"][0]["price"] = None
    serve_ionet(server, body)
    offer = by_id(provider.adapter().list_models())["12__1"]
    assert offer.usd_per_gpu_hour is None and offer.usd_per_instance_hour is None


def test_it_rejects_a_body_without_the_hardware_list(ionet):
    provider, server = ionet
    serve_ionet(server, {"data": []})
    with pytest.raises(errors.BadPayload, match=r"data\.hardware"):
        provider.adapter().list_models()


def test_a_quote_settles_that_the_listed_price_is_per_vm(ionet):
    provider, server = ionet
    serve_ionet(server, price_per="vm")
    offers = by_id(provider.adapter().list_models())
    h100x8 = offers["8H100.80S.176V__FI"]  # external supplier: quoted 27.875342 for a VM-hour
    assert h100x8.usd_per_instance_hour == Decimal("27.875342")
    assert h100x8.usd_per_gpu_hour == Decimal("3.484418")
    assert (
        "per VM, as io.net's quote of $27.875342 for one hour of the supplier's 8-GPU VM "
        "8H100.80S.176V__FI showed" in h100x8.price_note
    )
    # The internal supplier's quote was for its 2-GPU VM: its 8-GPU VM's note says so.
    note = offers["12__8"].price_note
    assert "quote of $0.6 for one hour of the supplier's 2-GPU VM 12__2" in note
    quoted = {request.args["hardware_id"] for request, _ in server.log[1:]}
    assert quoted == {"12", "8H100.80S.176V"}  # one multi-GPU VM per supplier


def test_a_quote_settles_that_the_listed_price_is_per_gpu(ionet):
    """A recorded io.net 8× H100 listed at 2.19 read as per VM was $0.27 a GPU-hour, 4-7× under
    every other H100; when the quote for one VM-hour is 8× the listed price, it is per GPU."""
    provider, server = ionet
    body = payload("ionet/hardware.json")
    h100 = next(i for i in body["data"]["hardware"] if i["id"] == "8H100.80S.176V__FI")
    h100["price"] = 2.19
    serve_ionet(server, body, price_per="card")
    offers = by_id(provider.adapter().list_models())
    h100x8 = offers["8H100.80S.176V__FI"]
    assert h100x8.usd_per_gpu_hour == Decimal("2.19")
    assert h100x8.usd_per_instance_hour == Decimal("17.52")
    assert "Listed price is per GPU" in h100x8.price_note and "$17.52" in h100x8.price_note
    assert offers["12__2"].usd_per_gpu_hour == Decimal("0.6")  # internal supplier, per card too
    assert offers["12__1"].usd_per_gpu_hour == Decimal("0.3")  # one card: either reading


def test_without_a_quote_the_documented_reading_is_used_and_said_unconfirmed(ionet):
    provider, server = ionet
    server.expect_request(
        "/enterprise/v1/io-cloud/vmaas/hardware", headers={"x-api-key": "io-test-key-5678"}
    ).respond_with_json(payload("ionet/hardware.json"))
    server.expect_request("/enterprise/v1/io-cloud/vmaas/price").respond_with_json(
        {"detail": [{"loc": ["query", "hardware_id"], "msg": "not found", "type": "value_error"}]},
        status=422,
    )
    h100x8 = by_id(provider.adapter().list_models())["8H100.80S.176V__FI"]
    assert h100x8.usd_per_gpu_hour == Decimal("3.484418")
    assert "no quote confirmed whether it is per VM or per GPU" in h100x8.price_note


def test_a_quote_total_divides_by_hours_replicas_and_gpus(ionet):
    provider, server = ionet
    server.expect_request(
        "/enterprise/v1/io-cloud/vmaas/price",
        query_string={
            "location_ids": '["US"]',
            "hardware_id": "12",
            "currency": "usdc",
            "duration_hours": "4",
            "gpus_per_vm": "2",
            "replica_count": "3",
        },
    ).respond_with_json(payload("ionet/price.json"))
    item = payload("ionet/hardware.json")["data"]["hardware"][1]  # 12__2
    quoted = provider.adapter().quote_per_gpu_hour(item, hours=4, replicas=3)
    assert quoted == Decimal("0.3")  # total_cost_usdc 7.2 / (4 h × 3 VMs × 2 GPUs)


def test_authenticate_reports_list_price_against_a_quote(ionet):
    provider, server = ionet
    serve_ionet(server)
    quote = payload("ionet/price.json")
    quote["data"].update(replica_count=1, gpus_per_vm=1, total_cost_usdc=0.3)
    server.expect_request("/enterprise/v1/io-cloud/vmaas/price").respond_with_json(quote)
    result = provider.test_connection()
    assert result.status == "ok"
    assert "12__1: list $0.300000/GPU-hour, quote $0.300000/GPU-hour" in result.detail
    assert json.loads(server.log[1][0].args["location_ids"]) == ["US"]


def test_a_rejected_key_is_an_invalid_key(ionet):
    provider, server = ionet
    server.expect_request("/enterprise/v1/io-cloud/vmaas/hardware").respond_with_json(
        {"detail": "Invalid API key"}, status=401
    )
    with pytest.raises(errors.InvalidKey, match="Invalid API key"):
        provider.adapter().list_models()


def test_renting_points_at_the_console(ionet):
    provider, _ = ionet
    with pytest.raises(errors.NotSupported, match=r"https://cloud\.io\.net"):
        provider.adapter().rent("an-offer", {})


def test_a_gpu_spelt_with_memory_first_is_found_under_its_catalog_name(ionet, client):
    """io.net's catalog names an H100 "H100 80GB SXM5" (issue 14): the GPU filter finds it under
    "H100 SXM 80GB", beside every other provider's H100 SXM."""
    provider, server = ionet
    body = payload("ionet/hardware.json")
    h100 = next(i for i in body["data"]["hardware"] if i["id"] == "1H100.80S.22V__US")
    h100.update(name="H100 80GB SXM5", interconnect=None)
    serve_ionet(server, body)
    assert poll_provider("ionet").outcome == "ok"
    found = client.get("/?gpu=H100+SXM+80GB&provider=ionet").content.decode()
    offer = Offer.objects.get(provider=provider, upstream_id="1H100.80S.22V__US")
    assert offer.gpu_name == "H100 SXM 80GB" and f'href="/offers/{offer.pk}/"' in found

"""A price far from what other providers ask for the same GPU is stored, shown and flagged."""

from __future__ import annotations

from decimal import Decimal

import pytest

from providers.models import Offer
from providers.pipeline import poll_provider
from tests.conftest import payload
from tests.providers.conftest import serve_ionet, serve_vast

pytestmark = pytest.mark.django_db


def test_an_h100_far_below_the_median_is_flagged_on_its_card_and_the_health_page(
    vastai, ionet, client, staff_client
):
    """io.net's 8× H100 listed at 2.19, read per VM: $0.27 a GPU-hour, against Vast's H100s
    at $1.55-2.27. Stored and shown, flagged."""
    _, vast_server = vastai
    serve_vast(vast_server)
    assert poll_provider("vastai").outcome == "ok"
    _, io_server = ionet
    body = payload("ionet/hardware.json")
    h100 = next(i for i in body["data"]["hardware"] if i["id"] == "8H100.80S.176V__FI")
    h100["price"] = 2.19
    serve_ionet(io_server, body, price_per="vm")
    assert poll_provider("ionet").outcome == "ok"
    cheap = Offer.objects.get(upstream_id="8H100.80S.176V__FI")
    assert cheap.usd_per_gpu_hour == Decimal("0.27375") and cheap.price_flags == ["unusual-low"]
    assert Offer.objects.get(upstream_id="1H100.80S.22V__US").price_flags == []
    html = client.get(f"/offers/{cheap.pk}/").content.decode()
    assert "Unusual price: far below what other providers ask for the same" in html
    health = staff_client.get("/health/").content.decode()
    assert f'href="/offers/{cheap.pk}/"' in health.split('id="unusual-prices"')[1]

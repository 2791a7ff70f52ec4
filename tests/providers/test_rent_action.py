"""Renting a GPU offer: an explicit admin action with a confirmation page, never automatic."""

from __future__ import annotations

import re

import pytest

from providers.models import Offer
from providers.pipeline import poll_provider
from tests.conftest import payload
from tests.providers.conftest import serve_ionet, serve_vast

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/providers/offer/"


@pytest.fixture
def vast_offers(vastai, settings):
    _provider, server = vastai
    settings.VASTAI_API_KEY = "vast-test-key-1234"
    serve_vast(server)
    poll_provider("vastai")
    server.clear()
    return server


def choose(offer: Offer, **extra) -> dict:
    return {"action": "rent", "_selected_action": [str(offer.pk)], **extra}


def confirm(client, offer: Offer, **fields) -> dict:
    """The form data of a filled-in confirmation page, with the page's one-time token."""
    page = client.post(CHANGELIST, choose(offer)).content.decode()
    once = re.search(r'name="once" value="([0-9a-f]+)"', page).group(1)
    return choose(offer, confirm="yes", once=once, **fields)


def test_it_asks_for_confirmation_before_calling_the_provider(admin_client, vast_offers):
    offer = Offer.objects.get(upstream_id="21334871")
    response = admin_client.post(CHANGELIST, choose(offer))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Rent this offer?" in page and "Yes, rent it" in page and "1× RTX 4090" in page
    assert 'name="price"' not in page  # on-demand: no bid to make
    assert vast_offers.log == []


def test_confirming_creates_the_instance(admin_client, vast_offers):
    offer = Offer.objects.get(upstream_id="21319944")
    vast_offers.expect_request(
        "/api/v0/asks/21319944/",
        method="PUT",
        headers={"Authorization": "Bearer vast-test-key-1234"},
        json={"image": "pytorch/pytorch:latest", "disk": 32.0},
    ).respond_with_json({"success": True, "new_contract": 99887766})
    response = admin_client.post(
        CHANGELIST,
        confirm(admin_client, offer, image="pytorch/pytorch:latest", disk="32"),
        follow=True,
    )
    assert "Rented 8× H100 SXM 80GB on Vast.ai as instance 99887766" in response.content.decode()
    assert len(vast_offers.log) == 1


def test_an_interruptible_offer_needs_a_bid(admin_client, vast_offers):
    offer = Offer.objects.get(upstream_id="21342210:bid")
    response = admin_client.post(
        CHANGELIST, confirm(admin_client, offer, image="pytorch/pytorch:latest", disk="16")
    )
    assert response.status_code == 200 and "This field is required" in response.content.decode()
    assert vast_offers.log == []
    vast_offers.expect_request(
        "/api/v0/asks/21342210/",
        method="PUT",
        json={"image": "pytorch/pytorch:latest", "disk": 16.0, "price": 0.36},
    ).respond_with_json({"success": True, "new_contract": 5})
    response = admin_client.post(
        CHANGELIST,
        confirm(admin_client, offer, image="pytorch/pytorch:latest", disk="16", price="0.36"),
        follow=True,
    )
    assert "as instance 5" in response.content.decode()


def test_a_provider_refusal_is_shown_not_a_500(admin_client, vast_offers):
    offer = Offer.objects.get(upstream_id="21319944")
    vast_offers.expect_request("/api/v0/asks/21319944/", method="PUT").respond_with_json(
        payload("vastai/error.json"), status=404
    )
    response = admin_client.post(
        CHANGELIST, confirm(admin_client, offer, image="x", disk="16"), follow=True
    )
    assert response.status_code == 200
    assert "no_such_ask Instance type by id 21319944 is not available" in response.content.decode()


def test_without_a_key_it_says_so_before_asking_for_the_rental(admin_client, vastai):
    _provider, server = vastai
    serve_vast(server)
    poll_provider("vastai")  # searching needs no key, renting does
    server.clear()
    offer = Offer.objects.get(upstream_id="21319944")
    page = admin_client.post(CHANGELIST, choose(offer), follow=True).content.decode()
    assert "no API key configured (set VASTAI_API_KEY or add one in admin)" in page
    assert "Yes, rent it" not in page
    assert server.log == []


def test_providers_that_cannot_rent_by_api_point_at_their_console(admin_client, ionet):
    _provider, server = ionet
    serve_ionet(server)
    poll_provider("ionet")
    offer = Offer.objects.get(upstream_id="12__1")
    response = admin_client.post(CHANGELIST, choose(offer), follow=True)
    page = response.content.decode()
    assert (
        "Not rented on io.net: renting through the API is not supported; use https://cloud.io.net"
        in page
    )
    assert "Io.net" not in page  # the admin capitalises a message's first letter
    assert "Yes, rent it" not in page


def test_a_double_submitted_confirmation_rents_once(admin_client, vast_offers):
    offer = Offer.objects.get(upstream_id="21319944")
    vast_offers.expect_request("/api/v0/asks/21319944/", method="PUT").respond_with_json(
        {"success": True, "new_contract": 42}
    )
    data = confirm(admin_client, offer, image="pytorch/pytorch:latest", disk="16")
    first = admin_client.post(CHANGELIST, data, follow=True).content.decode()
    second = admin_client.post(CHANGELIST, data, follow=True).content.decode()
    assert "as instance 42" in first
    assert "already used or has expired, so nothing was rented" in second
    assert len(vast_offers.log) == 1

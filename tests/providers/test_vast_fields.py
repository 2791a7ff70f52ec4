"""Vast.ai fields a user acts on, read from recorded offers (tests/payloads/SOURCES-gpu.md,
"Recorded offers") through the real adapter, poll and marketplace."""

from __future__ import annotations

import pytest

from providers.models import Offer
from providers.pipeline import poll_provider
from tests.conftest import payload
from tests.providers.conftest import serve_vast

pytestmark = pytest.mark.django_db


@pytest.fixture
def recorded(vastai):
    provider, server = vastai
    serve_vast(server, payload("vastai/bundles_recorded.json"))
    run = poll_provider("vastai")
    assert run.outcome == "ok", run.error_message
    return {o.upstream_id: o for o in Offer.objects.filter(provider=provider)}


def test_it_reads_verification_from_the_fields_the_api_sends(recorded):
    verification = {
        key: recorded[key].description.split(";")[0] for key in recorded if ":" not in key
    }
    assert verification == {
        "11684738": "verified",  # 2024 answer: `verification` only
        "21348645": "unverified",  # 2025 answer: `verified: false` beside it
        "90000001": "verified",  # `verified: true` and no `verification`
        "90000002": "verified",
        "90000003": "verified",
        "90000004": "verification unknown",  # neither: not called unverified
    }


def test_cpu_ram_is_the_machines_mib_shared_by_cores(recorded):
    offer = recorded["11684738"]  # 64,393 MiB on a 96-core host, 24 cores offered
    assert (offer.vcpus, offer.ram_gb) == (24, 15.7)
    assert (offer.vram_gb, offer.vram_reported_gb) == (24, None)  # 24,564 MiB: a 24 GB card


def test_an_offer_without_the_machines_core_count_has_unknown_vcpu_and_ram(recorded, client):
    offer = recorded["90000002"]  # cpu_cores null
    assert offer.vcpus is None and offer.ram_gb is None
    html = client.get(f"/offers/{offer.pk}/").content.decode()
    assert '<dt>vCPU</dt><dd class="unknown">unknown</dd>' in html
    assert '<dt>RAM</dt><dd class="unknown">unknown</dd>' in html


def test_a_minimum_bid_above_on_demand_is_flagged_not_a_discount(recorded, client):
    above, below = recorded["90000003:bid"], recorded["11684738:bid"]
    assert above.usd_per_instance_hour > recorded["90000003"].usd_per_instance_hour
    assert above.price_flags == ["bid-above-on-demand"] and below.price_flags == []
    html = client.get(f"/offers/{above.pk}/").content.decode()
    assert "this interruptible listing is no discount" in html
    assert "no discount" not in client.get(f"/offers/{below.pk}/").content.decode()


def test_an_h100_shows_its_spec_size_and_the_measured_one(vastai, client):
    provider, server = vastai
    serve_vast(server)
    poll_provider("vastai")
    h100 = Offer.objects.get(provider=provider, upstream_id="21319944")
    html = client.get(f"/offers/{h100.pk}/").content.decode()
    assert "80 GB each <small>(79.6 GB as the provider reports it)</small>" in html
    found = client.get("/?kind=gpu&min_vram=80&provider=vastai").content.decode()
    assert f'href="/offers/{h100.pk}/"' in found


@pytest.mark.parametrize("root", ["", "/api/v0", "/api/v0/"])
def test_it_accepts_the_origin_or_the_api_root_as_base_url(vastai, settings, root):
    provider, server = vastai
    settings.VASTAI_BASE_URL = server.url_for("").rstrip("/") + root
    serve_vast(server)
    catalog = provider.adapter().list_models()
    assert len(catalog.offers) == 30
    assert [request.path for request, _ in server.log] == ["/api/v0/bundles/"]

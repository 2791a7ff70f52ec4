"""Regions a user can filter on, and the data residency an admin can state for a provider."""

from __future__ import annotations

import pytest

from providers.models import Offer, Provider
from providers.pipeline import poll_provider
from tests.conftest import payload
from tests.marketplace.conftest import llm, names, publish, usd

pytestmark = pytest.mark.django_db


def serve_deepinfra(registry, serve):
    server = serve(registry["deepinfra"])
    server.expect_request("/models/list").respond_with_json(payload("deepinfra/models_list.json"))
    server.expect_request("/v1/openai/models").respond_with_json(
        payload("deepinfra/openai_models.json")
    )


def test_offers_with_no_stated_region_are_found_under_unspecified(registry, serve, client):
    serve_deepinfra(registry, serve)
    assert poll_provider("deepinfra").outcome == "ok"
    publish(registry["groq"], llm("llama-3.1-8b-instant", region="us", usd_per_1m_input=usd("1")))
    page = client.get("/")
    assert 'name="region" value="unspecified"' in page.content.decode()
    unspecified = names(client.get("/?region=unspecified"))
    assert "deepseek-ai/DeepSeek-V3.2" in unspecified and "llama-3.1-8b-instant" not in unspecified
    assert names(client.get("/?region=us")) == ["llama-3.1-8b-instant"]


def test_an_admin_sets_eu_residency_and_the_next_poll_tags_offers_gdpr(
    registry, serve, admin_client, client
):
    deepinfra = registry["deepinfra"]
    url = f"/admin/providers/provider/{deepinfra.pk}/change/"
    form = admin_client.get(url).content.decode()
    assert 'value="eu"' in form and 'value="us"' in form
    response = admin_client.post(
        url,
        {
            "name": deepinfra.name,
            "kind": deepinfra.kind,
            "enabled": "on",
            "poll_interval": deepinfra.poll_interval,
            "regions": ["eu"],
            "docs_url": deepinfra.docs_url,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Provider.objects.get(pk=deepinfra.pk).regions == ["eu"]
    serve_deepinfra(registry, serve)
    assert poll_provider("deepinfra").outcome == "ok"
    offer = Offer.objects.get(upstream_id="deepseek-ai/DeepSeek-V3.2")
    assert offer.region == "eu" and offer.compliance_tags == ["region=eu", "gdpr"]
    assert "deepseek-ai/DeepSeek-V3.2" in names(client.get("/?region=eu"))


def test_sorting_by_price_across_units_says_what_the_order_means(client, world):
    note = 'id="sort-note"'
    assert note in client.get("/").content.decode()
    assert note in client.get("/?kind=llm").content.decode()
    assert note not in client.get("/?kind=gpu").content.decode()
    assert note not in client.get("/?sort=newest").content.decode()

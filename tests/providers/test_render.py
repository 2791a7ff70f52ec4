from __future__ import annotations

import pytest

from providers.pipeline import poll_provider
from resilience import errors
from tests.conftest import by_id

pytestmark = pytest.mark.django_db


def test_it_offers_the_sheet_tiers_in_their_native_unit_only(render):
    provider, server = render
    catalog = provider.adapter().list_models()
    offers = by_id(catalog)
    assert set(offers) == {"tier-2", "tier-3"}  # Tier 1 is not released: no rate
    tier2 = offers["tier-2"]
    assert tier2.native_price == "100 OBh per RENDER (nominal)"
    assert offers["tier-3"].native_price == "200 OBh per RENDER (nominal)"
    assert tier2.price_source == "sheet"
    assert tier2.price_source_url == "https://know.rendernetwork.com/basics/how-much-does-rndr-cost"
    assert tier2.price_source_date is None and "page undated" in tier2.price_note
    assert all(price is None for price in tier2.prices().values())  # never converted to USD
    assert server.log == []


def test_a_poll_stores_the_sheet_without_any_http_call(render):
    provider, _ = render
    run = poll_provider("render")
    assert (run.outcome, run.offers_added, run.http_calls) == ("ok", 2, 0)
    assert list(provider.offers.values_list("gscore_value", flat=True)) == [None, None]


def test_health_check_is_a_reachability_check_of_the_configured_url(render):
    provider, server = render
    server.expect_request("/").respond_with_data("<html>Render</html>", content_type="text/html")
    result = provider.test_connection()
    assert result.status == "ok" and "is reachable" in result.detail


def test_health_check_reports_an_unreachable_site(render, settings):
    provider, _ = render
    settings.RENDER_BASE_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    assert provider.test_connection().status == "unreachable"


def test_renting_points_at_the_console(render):
    provider, _ = render
    with pytest.raises(errors.NotSupported, match=r"https://rendernetwork\.com"):
        provider.adapter().rent("an-offer", {})

"""The ASGI entry point as `make run` serves it: a site page runs its middleware and view in one
thread hop (gpubroker.asgi.SiteHandler) and answers as under Django's own handler."""

from __future__ import annotations

import httpx
import pytest
from asgiref.sync import iscoroutinefunction

from gpubroker import asgi
from tests.conftest import served


@pytest.fixture
def site_url(transactional_db):
    with served(asgi.application) as url:
        yield url


def test_it_builds_the_site_middleware_chain_sync_and_the_api_one_empty():
    """Sync: one hop to a thread per request, not one in and out of each middleware."""
    assert iscoroutinefunction(asgi.django_application._middleware_chain)
    assert not iscoroutinefunction(asgi.site_application._middleware_chain)
    assert asgi.site_application._view_middleware  # CSRF's process_view, as configured
    assert asgi.api_application._view_middleware == []


def test_it_serves_a_page_with_every_middleware_applied(site_url):
    response = httpx.get(f"{site_url}/status/", headers={"Host": "localhost"})
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert response.headers["x-frame-options"] == "DENY"  # XFrameOptionsMiddleware
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"  # SecurityMiddleware


def test_it_serves_the_htmx_fragment_of_the_marketplace(site_url):
    page = httpx.get(f"{site_url}/", headers={"Host": "localhost"})
    fragment = httpx.get(f"{site_url}/", headers={"Host": "localhost", "HX-Request": "true"})
    assert page.status_code == fragment.status_code == 200
    assert "HX-Request" in fragment.headers["vary"]
    assert "<html" in page.text and "<html" not in fragment.text  # HtmxMiddleware saw it


def test_a_missing_offer_is_a_404_page(site_url):
    response = httpx.get(f"{site_url}/offers/999999999/", headers={"Host": "localhost"})
    assert response.status_code == 404

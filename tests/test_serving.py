"""The ASGI entry point as `make run` serves it: a site page runs its middleware and view in one
thread hop (gpubroker.asgi.SiteHandler) and answers as under Django's own handler."""

from __future__ import annotations

import threading

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


def site_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("site")}


def test_it_serves_the_site_from_threads_it_keeps(site_url):
    """One request after another reuses a thread (its connection object, its cache clients),
    instead of making a thread, and a connection object, per request as Django does."""
    httpx.get(f"{site_url}/status/", headers={"Host": "localhost"})
    before = site_threads()
    for _ in range(10):
        assert httpx.get(f"{site_url}/status/", headers={"Host": "localhost"}).status_code == 200
    assert site_threads() == before and 1 <= len(before) <= asgi.SITE_THREADS


def test_it_streams_a_csv_export_from_the_database(site_url):
    with httpx.stream(
        "GET", f"{site_url}/api/v1/pricing?format=csv", headers={"Host": "localhost"}
    ) as r:
        body = r.read().decode()
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert body.startswith("id,provider,kind,name,")

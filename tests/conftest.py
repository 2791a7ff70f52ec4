"""A tiny world for the tests: the registry loaded, provider payloads served on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connection
from pytest_httpserver import HTTPServer

from providers.models import Offer, Provider
from providers.registry import load_registry

PAYLOADS = Path(__file__).parent / "payloads"


def payload(path: str):
    return json.loads((PAYLOADS / path).read_text())


def by_id(catalog) -> dict:
    return {offer.upstream_id: offer for offer in catalog.offers}


def row_versions() -> dict[str, str]:
    """Each stored offer's row version (PostgreSQL's xmin: the transaction, or savepoint, that
    last wrote it), by upstream id: a row whose version is unchanged was not written."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT upstream_id, xmin::text FROM {Offer._meta.db_table}")
        return dict(cursor.fetchall())


def rewritten(before: dict[str, str]) -> set[str]:
    """The offers written since `row_versions()` returned `before` (new ones included)."""
    return {key for key, xmin in row_versions().items() if before.get(key) != xmin}


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _fast_retries(settings):
    """Retries keep their count and rules in tests, with millisecond backoff."""
    settings.PROVIDER_RETRY_BASE_DELAY = 0.001
    settings.PROVIDER_RETRY_MAX_DELAY = 0.01
    settings.PROVIDER_RETRY_JITTER = 0


@pytest.fixture
def registry(db) -> dict[str, Provider]:
    return {provider.slug: provider for provider in load_registry()}


@pytest.fixture
def serve(httpserver: HTTPServer, settings):
    """Point a provider's <PREFIX>_BASE_URL (and any extra URL) at the loopback server."""

    def point(provider: Provider, *extra: str) -> HTTPServer:
        origin = httpserver.url_for("").rstrip("/")
        setattr(settings, f"{provider.env_prefix}_BASE_URL", origin)
        for name in extra:
            setattr(settings, f"{provider.env_prefix}_{name}", origin)
        return httpserver

    return point


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    client.force_login(user)
    return client

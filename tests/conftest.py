"""A tiny world for the tests: the registry loaded, provider payloads served on loopback,
a bare client for one provider, and both shared stores."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache as once
from itertools import batched
from pathlib import Path

import pytest
import redis
import uvicorn
from django.conf import settings
from django.core.cache import cache
from django.db import connection, connections
from pytest_httpserver import HTTPServer

from gpubroker.celery import app
from providers.models import Offer, Provider
from providers.registry import load_registry
from resilience.calls import forget_local_state
from resilience.client import ProviderClient
from resilience.policy import ProviderPolicy
from resilience.store import REDIS_PREFIX

PAYLOADS = Path(__file__).parent / "payloads"
# A Groq-shaped provider for the client's tests: its key, its cheapest path, an answer.
KEY = "gsk_healthtests000000000001"
PATH = "/openai/v1/models"
MODELS = {"object": "list", "data": [{"id": "llama-3.1-8b-instant", "active": True}]}


@once
def _recorded(path: str) -> str:
    return (PAYLOADS / path).read_text()


def payload(path: str):
    """A recorded provider answer (read from disk once a session; a fresh copy each call)."""
    return json.loads(_recorded(path))


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


def clear_our_keys() -> None:
    """Empty the Django cache and the shared store. On Redis only our own keys go (the
    cache's KEY_PREFIX and the store's prefix), not the whole database REDIS_URL names, which
    someone else's work may share."""
    config = settings.CACHES["default"]
    if not config["BACKEND"].endswith("RedisCache"):
        cache.clear()
        return
    client = redis.Redis.from_url(config["LOCATION"])
    try:
        for prefix in {f"{config.get('KEY_PREFIX', '')}:", REDIS_PREFIX}:
            for batch in batched(client.scan_iter(match=f"{prefix}*", count=1000), 1000):
                client.delete(*batch)
    finally:
        client.close()


@pytest.fixture(scope="session", autouse=True)
def _no_connection_outlives_the_run(django_db_setup, django_db_blocker):
    """The servers' long-lived threads (the site's, the broker's database threads) keep their
    connections to the test database: at the end they are ended, so the database can be
    dropped (pytest-django drops it once this fixture has finished)."""
    yield
    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )


@pytest.fixture(autouse=True)
def _clean_cache():
    forget_local_state()
    clear_our_keys()
    yield
    forget_local_state()
    clear_our_keys()


@pytest.fixture(autouse=True)
def _fast_retries(settings):
    """Retries keep their count and rules in tests, with millisecond backoff."""
    settings.PROVIDER_RETRY_BASE_DELAY = 0.001
    settings.PROVIDER_RETRY_MAX_DELAY = 0.01
    settings.PROVIDER_RETRY_JITTER = 0


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def eager_tasks():
    """Celery tasks run in the calling process at apply_async (a real worker: tests/faults)."""
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


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


@pytest.fixture(params=["redis", pytest.param("database", marks=pytest.mark.django_db)])
def backend(request, settings) -> str:
    """Run the test once on Redis and once on the embedded default's database store.

    The database run is marked at collection (not `getfixturevalue("db")` here): pytest-django
    creates only the test databases that collected tests declare, so a run of one file whose
    only database use came from inside this fixture found no test database."""
    if request.param == "database":
        settings.REDIS_URL = ""
    return request.param


@pytest.fixture
def groq_server(httpserver: HTTPServer, settings) -> HTTPServer:
    """Groq's base URL on the loopback server, a key set, one attempt per call, no cache."""
    settings.GROQ_BASE_URL = httpserver.url_for("").rstrip("/")
    settings.GROQ_API_KEY = KEY
    settings.PROVIDER_MAX_RETRIES = 0
    settings.PROVIDER_CACHE_ENABLED = False
    return httpserver


@pytest.fixture
def groq_client():
    """A bare ProviderClient for Groq (what every adapter uses underneath)."""
    c = ProviderClient(policy_for("groq"))
    yield c
    c.close()


def policy_for(slug: str) -> ProviderPolicy:
    """A provider's policy as its settings say now (no database row needed)."""
    return Provider(slug=slug, env_prefix=slug.upper()).policy()


def get(client: ProviderClient, path: str = PATH, **kwargs):
    return client.request("GET", path, headers={"Authorization": f"Bearer {KEY}"}, **kwargs)


def requests_to(server: HTTPServer, path: str = PATH) -> int:
    return sum(1 for request, _ in server.log if request.path == path)


@contextmanager
def served(application) -> Iterator[str]:
    """An ASGI application under uvicorn in a thread, on a free loopback port: its URL. The
    server's threads open their own database connections, so callers commit (transactional_db)."""
    connections.settings["default"]["CONN_MAX_AGE"] = 0  # no connection outlives a request
    server = uvicorn.Server(
        uvicorn.Config(application, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)

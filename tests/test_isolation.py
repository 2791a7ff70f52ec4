"""Tests share a Redis database with whatever else REDIS_URL names: they clear only their own."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings
from django.core.cache import cache

from resilience.store import REDIS_PREFIX
from tests.conftest import clear_our_keys


@pytest.mark.skipif(not settings.REDIS_URL, reason="the embedded default has no Redis")
def test_it_clears_the_cache_and_the_shared_store_but_not_others_keys():
    client = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    client.set("someone-else:session", "keep me")
    client.set(f"{REDIS_PREFIX}breaker:groq", "{}")
    cache.set("ours", 1)
    try:
        clear_our_keys()
        assert cache.get("ours") is None
        assert client.get(f"{REDIS_PREFIX}breaker:groq") is None
        assert client.get("someone-else:session") == b"keep me"
    finally:
        client.delete("someone-else:session")
        client.close()

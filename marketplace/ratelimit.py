"""The public API's rate limit: API_RATE_LIMIT requests per client IP per minute, counted in
the shared cache (Redis in production), so every worker and process counts against one
budget. A fixed window: one atomic increment per request, one round trip on Redis.

If the cache cannot be reached, requests are let through: the API answers from PostgreSQL
and must not fail because Redis is down.
"""

from __future__ import annotations

import functools
import logging
import threading
import time

import redis
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.http import HttpRequest
from ninja.throttling import BaseThrottle

logger = logging.getLogger(__name__)

WINDOW = 60  # seconds


class ClientRateLimit(BaseThrottle):
    """One budget per client address (REMOTE_ADDR, or X-Forwarded-For behind
    NINJA_NUM_PROXIES proxies)."""

    def __init__(self) -> None:
        self._wait = threading.local()  # ninja asks wait() right after allow_request()

    def allow_request(self, request: HttpRequest) -> bool:
        now = time.time()
        window = int(now // WINDOW)
        key = f"api-rate:{self.get_ident(request)}:{window}"
        try:
            used = count(key)
        except Exception as exc:  # the cache is down: degrade to no limit, never to a 500
            logger.warning("API rate limit not applied (cache unavailable): %s", exc)
            return True
        self._wait.seconds = max(1, int((window + 1) * WINDOW - now) + 1)
        return used <= settings.API_RATE_LIMIT

    def wait(self) -> int:
        return getattr(self._wait, "seconds", WINDOW)


def count(key: str) -> int:
    """Requests counted under `key` in this window, this one included."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        backend.add(key, 0, timeout=WINDOW + 1)
        return backend.incr(key)
    # Django's incr() on Redis is EXISTS then INCRBY, each through a client it builds for the
    # command: with add(), three round trips a request. The same SET NX and INCR go as one
    # pipeline, through one client on the cache's own connection pool.
    full_key = backend.make_and_validate_key(key)
    pipe = _client(backend._cache).pipeline(transaction=False)
    _, used = pipe.set(full_key, 0, ex=WINDOW + 1, nx=True).incr(full_key).execute()
    return used


@functools.lru_cache(maxsize=64)
def _client(backend: RedisCacheClient) -> redis.Redis:
    """A client on the cache's connection pool, built once (each costs ~0.1 ms: redis-py
    fills its table of reply callbacks)."""
    return backend.get_client(write=True)

"""The public API's rate limit: API_RATE_LIMIT requests per client IP per minute, counted in
the shared cache (Redis in production), so every worker and process counts against one
budget. A fixed window: one atomic increment per request.

If the cache cannot be reached, requests are let through: the API answers from PostgreSQL
and must not fail because Redis is down.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.core.cache import cache
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
            cache.add(key, 0, timeout=WINDOW + 1)
            used = cache.incr(key)
        except Exception as exc:  # the cache is down: degrade to no limit, never to a 500
            logger.warning("API rate limit not applied (cache unavailable): %s", exc)
            return True
        self._wait.seconds = max(1, int((window + 1) * WINDOW - now) + 1)
        return used <= settings.API_RATE_LIMIT

    def wait(self) -> int:
        return getattr(self._wait, "seconds", WINDOW)

"""Options for every Redis client of the project (the shared store, Django's cache): imported
by the settings module, so it imports nothing but redis."""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def redis_options(timeout: float) -> dict[str, Any]:
    """A down or hung Redis costs at most `timeout` a command, plus one immediate retry when a
    pooled connection was dropped (a restarted Redis), not redis-py's default of three
    retries with backoff and 5 s timeouts."""
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
    }

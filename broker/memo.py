"""A few seconds of memory for what every request reads and rarely changes (a key, a model's
offers), so the request path does not ask the database each time. BROKER_CACHE_SECONDS (0:
off) bounds how stale it may be: a revoked key or a re-polled offer counts within that time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings

T = TypeVar("T")
MAX_ENTRIES = 10_000


class Memo:
    def __init__(self) -> None:
        self.entries: dict[object, tuple[float, object]] = {}

    def get(self, key: object, load: Callable[[], T]) -> T:
        ttl = settings.BROKER_CACHE_SECONDS
        if ttl <= 0:
            return load()
        now = time.monotonic()
        hit = self.entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]  # type: ignore[return-value]
        value = load()
        if len(self.entries) >= MAX_ENTRIES:
            self.entries.clear()
        self.entries[key] = (now + ttl, value)
        return value

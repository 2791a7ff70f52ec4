"""A second of memory for what every request reads and rarely changes (a key, a model's
offers, the providers' health), so the request path does not ask the database or the shared
store each time. BROKER_CACHE_SECONDS (default 1; 0: off) bounds how stale it may be: a
revoked key, a re-polled offer or a breaker opened elsewhere counts within that time."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TypeVar

from django.conf import settings

from broker import database

T = TypeVar("T")
MAX_ENTRIES = 10_000
_in_memory: ContextVar[bool] = ContextVar("in_memory", default=False)


class Missing(Exception):
    """Asked `in_memory()`: the answer needs the database or the shared store."""


@contextlib.contextmanager
def in_memory() -> Iterator[None]:
    """Within: what would be loaded raises Missing instead (the broker's request path tries
    this on the event loop first, and goes to a database thread only when it must)."""
    token = _in_memory.set(True)
    try:
        yield
    finally:
        _in_memory.reset(token)


def only_in_memory() -> bool:
    return _in_memory.get()


class Memo:
    """An entry is loaded again by the first request that finds it in the last quarter of its
    time, while the others go on reading it: concurrent requests do not all stop to load the
    same thing at the moment it expires (that was a stall of tens of milliseconds each second
    at 32 requests in flight)."""

    def __init__(self, max_seconds: float | None = None) -> None:
        """`max_seconds`: never longer than this, whatever BROKER_CACHE_SECONDS says."""
        self.entries: dict[object, tuple[float, object]] = {}
        self.loading: set[object] = set()  # being loaded again ahead of their expiry
        self.max_seconds = max_seconds

    def ttl(self) -> float:
        ttl = settings.BROKER_CACHE_SECONDS
        return ttl if self.max_seconds is None else min(ttl, self.max_seconds)

    def get(self, key: object, load: Callable[[], T]) -> T:
        ttl = self.ttl()
        if ttl <= 0:  # remember nothing, nor serve what was remembered before
            if only_in_memory():
                raise Missing(key)
            return load()
        now = time.monotonic()
        hit = self.entries.get(key)
        if hit is not None and hit[0] > now:
            if hit[0] - now > ttl / 4 or key in self.loading:
                return hit[1]  # type: ignore[return-value]
            self.loading.add(key)  # loaded again now; the others read this one meanwhile
            if only_in_memory():  # on the event loop: by a database thread, not waited for
                database.submit(self._load_again, key, load, ttl)
                return hit[1]  # type: ignore[return-value]
        elif only_in_memory():
            raise Missing(key)
        try:
            value = load()
        finally:
            self.loading.discard(key)
        self.keep(key, value, now + ttl)
        return value

    def keep(self, key: object, value: object, until: float) -> None:
        if len(self.entries) >= MAX_ENTRIES:
            self.entries.clear()
        self.entries[key] = (until, value)

    def _load_again(self, key: object, load: Callable[[], object], ttl: float) -> None:
        try:
            started = time.monotonic()
            self.keep(key, load(), started + ttl)
        finally:
            self.loading.discard(key)

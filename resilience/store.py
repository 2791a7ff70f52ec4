"""Resilience state shared by every process: Redis when REDIS_URL is set, else the database.

Two kinds of value live here:
- a *state*: a small JSON dict changed by read-modify-write, `update(key, transition)`, run
  atomically: WATCH/MULTI on Redis (retried when another process wrote in between); in the
  database a row lock (SELECT … FOR UPDATE on Postgres; on SQLite the IMMEDIATE transactions
  set in settings take the write lock at BEGIN). The breaker and the token bucket are plain
  transition functions over such a dict, so both stores run the very same code.
- *counters*: dicts of numbers that are only ever incremented (`incr`), optionally expiring.
  On Redis, `incr(..., defer=True)` adds them up in this process and writes them in one
  round trip at most PROVIDER_METRICS_FLUSH_SECONDS later (at the latest when the process
  exits, or when it reads counters itself), so a call's metrics cost no round trip of their
  own. Other processes see them that much later. The database store always writes at once.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import threading
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, Protocol, TypeVar

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from resilience.models import SharedState
from resilience.redis_options import redis_options

T = TypeVar("T")
# A transition returns the new state (None: unchanged) and what the caller wants to know.
Transition = Callable[[dict[str, Any]], tuple[dict[str, Any] | None, T]]
CounterOp = tuple[str, dict[str, float], int | None]  # key, increments, expiry in seconds
# The same transition as a Lua script and its arguments, for a hot path on Redis: one round
# trip instead of WATCH, GET, MULTI/EXEC. KEYS[1] is the state; it returns its result as JSON.
Script = tuple[str, list[Any]]

REDIS_PREFIX = "gpubroker:health:"
# Many counters in one command (a pipeline of HINCRBYFLOATs costs a reply per field).
# ARGV per key: expiry (0: none), number of fields, then field, amount pairs.
INCR_LUA = """
local i = 1
for k = 1, #KEYS do
  local ttl, fields = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  i = i + 2
  for _ = 1, fields do
    redis.call("HINCRBYFLOAT", KEYS[k], ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  if ttl > 0 then redis.call("EXPIRE", KEYS[k], ttl) end
end
return 0
"""


class StoreUnavailable(Exception):
    """The shared state (Redis) did not answer within REDIS_TIMEOUT: callers that only show
    live stats go on without them; a provider call fails like any other."""


# Errors that mean "Redis is down or hung", from the store or from Django's Redis cache.
UNREACHABLE = (StoreUnavailable, redis.RedisError)


def _unavailable_on_redis_errors(method):
    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"shared state unreachable ({type(exc).__name__})") from exc

    return wrapped


class Store(Protocol):
    def writes_behind(self) -> bool: ...
    def update(self, key: str, transition: Transition[T], script: Script | None = None) -> T: ...
    def state(self, key: str) -> dict[str, Any]: ...
    def incr(self, ops: Iterable[CounterOp], *, defer: bool = False) -> None: ...
    def read(
        self, states: list[str], counters: list[str]
    ) -> tuple[dict[str, dict], dict[str, dict]]: ...
    def delete(self, keys: list[str]) -> None: ...


class RedisStore:
    def __init__(self, url: str):
        self.redis = redis.Redis.from_url(url, **redis_options(settings.REDIS_TIMEOUT))
        self.scripts: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[dict[str, float], int | None]] = {}
        self._timer: threading.Timer | None = None

    def writes_behind(self) -> bool:
        """Whether `incr(..., defer=True)` returns without a round trip."""
        return settings.PROVIDER_METRICS_FLUSH_SECONDS > 0

    @_unavailable_on_redis_errors
    def update(self, key: str, transition: Transition[T], script: Script | None = None) -> T:
        name = REDIS_PREFIX + key
        if script:
            source, args = script
            return json.loads(self._script(source)(keys=[name], args=args))
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(name)
                    raw = pipe.get(name)
                    new, result = transition(json.loads(raw) if raw else {})
                    if new is not None:
                        pipe.multi()
                        pipe.set(name, json.dumps(new))
                        pipe.execute()
                    return result
                except redis.WatchError:
                    continue  # another process changed it first: read again

    @_unavailable_on_redis_errors
    def state(self, key: str) -> dict[str, Any]:
        raw = self.redis.get(REDIS_PREFIX + key)
        return json.loads(raw) if raw else {}

    def incr(self, ops: Iterable[CounterOp], *, defer: bool = False) -> None:
        delay = settings.PROVIDER_METRICS_FLUSH_SECONDS
        if not defer or delay <= 0:
            self._incr_now(ops)
            return
        with self._lock:
            for key, fields, ttl in ops:
                pending, _ = self._pending.setdefault(key, ({}, ttl))
                for field, amount in fields.items():
                    pending[field] = pending.get(field, 0) + amount
            if self._timer is None:
                self._timer = threading.Timer(delay, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Write the counters added up in this process since the last flush."""
        with self._lock:
            pending, self._pending = self._pending, {}
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        # With Redis down these calls' metrics are lost (the calls themselves are not): a
        # timer thread or the exit hook has no caller to tell.
        with contextlib.suppress(StoreUnavailable):
            if pending:
                self._incr_now([(key, fields, ttl) for key, (fields, ttl) in pending.items()])

    def discard(self) -> None:
        """Forget the counters not yet written (a forked child: they are its parent's)."""
        with self._lock:
            self._pending, self._timer = {}, None

    @_unavailable_on_redis_errors
    def _incr_now(self, ops: Iterable[CounterOp]) -> None:
        keys, args = [], []
        for key, fields, ttl in ops:
            keys.append(REDIS_PREFIX + key)
            args += [ttl or 0, len(fields)]
            for field, amount in fields.items():
                args += [field, amount]
        self._script(INCR_LUA)(keys=keys, args=args)

    def _script(self, source: str):
        if source not in self.scripts:
            self.scripts[source] = self.redis.register_script(source)
        return self.scripts[source]

    @_unavailable_on_redis_errors
    def read(self, states: list[str], counters: list[str]) -> tuple[dict, dict]:
        if counters:
            self.flush()  # this process's own counters are part of what it reads
        pipe = self.redis.pipeline(transaction=False)
        for key in states:
            pipe.get(REDIS_PREFIX + key)
        for key in counters:
            pipe.hgetall(REDIS_PREFIX + key)
        results = pipe.execute()
        state_values = {
            k: json.loads(v) if v else {}
            for k, v in zip(states, results[: len(states)], strict=True)
        }
        counter_values = {
            k: {f.decode(): float(n) for f, n in v.items()}
            for k, v in zip(counters, results[len(states) :], strict=True)
        }
        return state_values, counter_values

    @_unavailable_on_redis_errors
    def delete(self, keys: list[str]) -> None:
        if keys:
            self.redis.delete(*(REDIS_PREFIX + k for k in keys))


class DatabaseStore:
    """resilience.SharedState rows, each changed only under its row lock."""

    def _locked(self, key: str) -> SharedState:
        rows = SharedState.objects.select_for_update()
        row = rows.filter(key=key).first()
        if row is None:  # create it without racing another process, then lock it
            SharedState.objects.bulk_create([SharedState(key=key)], ignore_conflicts=True)
            row = rows.get(key=key)
        if row.expires_at and row.expires_at <= timezone.now():
            row.value, row.expires_at = {}, None
        return row

    def writes_behind(self) -> bool:
        return False  # every change is a committed transaction

    def update(self, key: str, transition: Transition[T], script: Script | None = None) -> T:
        with transaction.atomic():
            row = self._locked(key)
            new, result = transition(row.value)
            if new is not None:
                row.value = new
                row.save(update_fields=["value", "expires_at"])
            return result

    def state(self, key: str) -> dict[str, Any]:
        return self.read([key], [])[0][key]

    def incr(self, ops: Iterable[CounterOp], *, defer: bool = False) -> None:
        with transaction.atomic():
            for key, fields, ttl in sorted(ops, key=lambda op: op[0]):  # one lock order
                row = self._locked(key)
                for field, amount in fields.items():
                    row.value[field] = row.value.get(field, 0) + amount
                if ttl:
                    row.expires_at = timezone.now() + timedelta(seconds=ttl)
                row.save(update_fields=["value", "expires_at"])

    def read(self, states: list[str], counters: list[str]) -> tuple[dict, dict]:
        found = dict(
            SharedState.objects.live().filter(key__in=states + counters).values_list("key", "value")
        )
        return {k: found.get(k, {}) for k in states}, {k: found.get(k, {}) for k in counters}

    def delete(self, keys: list[str]) -> None:
        SharedState.objects.filter(key__in=keys).delete()


_stores: dict[str, Store] = {}


def store() -> Store:
    """The shared store for this configuration (one Redis connection pool per process)."""
    url = settings.REDIS_URL
    if url not in _stores:
        _stores[url] = RedisStore(url) if url else DatabaseStore()
    return _stores[url]


def flush() -> None:
    """Write every counter this process still holds (at exit, and between tests)."""
    for shared in list(_stores.values()):
        if isinstance(shared, RedisStore):
            shared.flush()


def _forked() -> None:
    for shared in _stores.values():
        if isinstance(shared, RedisStore):
            shared.discard()


atexit.register(flush)
os.register_at_fork(after_in_child=_forked)


def purge_expired() -> int:
    """Delete expired counter rows (database store only; Redis expires keys by itself)."""
    return SharedState.objects.filter(expires_at__lte=timezone.now()).delete()[0]

"""A token bucket per provider, shared by every process through resilience.store.

Rate and burst capacity come from the provider's policy (the providers app fills them from
`<PREFIX>_RATE_LIMIT` and `<PREFIX>_RATE_LIMIT_BURST`, default the rate). Taking a token is
one atomic update, so four workers share one budget instead of each spending its own. A call
finding the bucket empty sleeps until a token is due, for at most
PROVIDER_RATE_LIMITER_MAX_WAIT seconds in all, then raises RateLimitExceeded.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings

from resilience import metrics
from resilience.errors import RateLimitExceeded
from resilience.policy import ProviderPolicy
from resilience.store import store


def key(slug: str) -> str:
    return f"bucket:{slug}"


def refilled(state: dict, now: float, rate: float, capacity: float) -> float:
    if "tokens" not in state:
        return capacity
    return min(capacity, state["tokens"] + max(0.0, now - state["at"]) * rate)


def take(state: dict, now: float, rate: float, capacity: float) -> tuple[dict, float]:
    """Take one token: returns the new state and 0, or the seconds until one is due."""
    tokens = refilled(state, now, rate, capacity)
    if tokens >= 1:
        return {"tokens": tokens - 1, "at": now}, 0.0
    return {"tokens": tokens, "at": now}, (1 - tokens) / rate


# `take` for Redis, in one atomic round trip (Redis runs a script alone, start to end).
TAKE_LUA = """
local now, rate, capacity = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local raw, tokens = redis.call("GET", KEYS[1]), capacity
if raw then
  local s = cjson.decode(raw)
  tokens = math.min(capacity, s.tokens + math.max(0, now - s.at) * rate)
end
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call("SET", KEYS[1], cjson.encode({tokens = tokens, at = now}))
return cjson.encode(wait)
"""


def acquire(policy: ProviderPolicy) -> None:
    if not settings.PROVIDER_RATE_LIMITER_ENABLED:
        return
    slug, rate, capacity = policy.slug, policy.tokens_per_second, policy.capacity
    if rate <= 0:
        return
    deadline = time.monotonic() + settings.PROVIDER_RATE_LIMITER_MAX_WAIT
    waited = False
    while True:
        now = time.time()
        wait = store().update(
            key(slug),
            lambda s, now=now: take(s, now, rate, capacity),
            script=(TAKE_LUA, [now, rate, capacity]),
        )
        if not wait:
            if waited:
                metrics.count(slug, "limiter_waited")
            return
        if time.monotonic() + wait > deadline:
            metrics.count(slug, "limiter_blocked")
            raise RateLimitExceeded(
                f"{slug}: our rate limit of {rate * 60:g}/min is used up; "
                f"next token in {wait:.1f}s",
                retry_after=wait,
            )
        waited = True
        time.sleep(wait)


def describe(state: dict, policy: ProviderPolicy, counters: dict[str, float]) -> dict[str, Any]:
    """The public view of a limiter (the provider guide's shape, plus requests_waited)."""
    rate, capacity = policy.tokens_per_second, policy.capacity
    available = refilled(state, time.time(), rate, capacity) if rate > 0 else capacity
    return {
        "enabled": settings.PROVIDER_RATE_LIMITER_ENABLED and rate > 0,
        "rate": rate * 60,
        "capacity": capacity,
        "available_tokens": round(available, 2),
        "utilization": round(1 - available / capacity, 3) if capacity else 0.0,
        "requests_blocked": int(counters.get("limiter_blocked", 0)),
        "requests_waited": int(counters.get("limiter_waited", 0)),
    }

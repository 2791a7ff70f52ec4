"""A token bucket per provider, shared by every process through resilience.store.

Rate and burst capacity come from the provider's policy (the providers app fills them from
`<PREFIX>_RATE_LIMIT` and `<PREFIX>_RATE_LIMIT_BURST`, default the rate). Taking a token is
one atomic update, so four workers share one budget instead of each spending its own. A call
finding the bucket empty sleeps until a token is due, for at most
PROVIDER_RATE_LIMITER_MAX_WAIT seconds in all, then raises RateLimitExceeded.

A process takes tokens in leases: up to what the bucket would refill in
PROVIDER_RATE_LIMITER_LEASE_SECONDS (at most a quarter of the capacity, at least one), kept for
that long and spent without a round trip; a lease unspent by then is dropped. A fast provider
so costs one round trip per lease, not per call; a slow one (a lease of one) is unchanged. Taken
early is never taken twice: all processes together stay within the bucket, give or take one
lease spent later than it was taken.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings

from resilience import metrics
from resilience.errors import RateLimitExceeded
from resilience.memo import ProcessMemo
from resilience.policy import ProviderPolicy
from resilience.store import store


def key(slug: str) -> str:
    return f"bucket:{slug}"


def refilled(state: dict, now: float, rate: float, capacity: float) -> float:
    if "tokens" not in state:
        return capacity
    return min(capacity, state["tokens"] + max(0.0, now - state["at"]) * rate)


def take(
    state: dict, now: float, rate: float, capacity: float, most: int = 1
) -> tuple[dict, list[float]]:
    """Take up to `most` whole tokens (at least one): returns the new state and
    [tokens taken, 0], or [0, the seconds until one is due]."""
    tokens = refilled(state, now, rate, capacity)
    if tokens >= 1:
        taken = min(most, int(tokens))
        return {"tokens": tokens - taken, "at": now}, [taken, 0.0]
    return {"tokens": tokens, "at": now}, [0, (1 - tokens) / rate]


# `take` for Redis, in one atomic round trip (Redis runs a script alone, start to end).
TAKE_LUA = """
local now, rate, capacity = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local most = tonumber(ARGV[4])
local raw, tokens = redis.call("GET", KEYS[1]), capacity
if raw then
  local s = cjson.decode(raw)
  tokens = math.min(capacity, s.tokens + math.max(0, now - s.at) * rate)
end
local taken, wait = 0, 0
if tokens >= 1 then
  taken = math.min(most, math.floor(tokens))
  tokens = tokens - taken
else
  wait = (1 - tokens) / rate
end
redis.call("SET", KEYS[1], cjson.encode({tokens = tokens, at = now}))
return cjson.encode({taken, wait})
"""

# Per provider: [tokens leased and not yet spent, time.monotonic() when the lease ends].
_leases = ProcessMemo()
forget = _leases.forget


def lease_size(policy: ProviderPolicy) -> int:
    refill = policy.tokens_per_second * settings.PROVIDER_RATE_LIMITER_LEASE_SECONDS
    return max(1, int(min(refill, policy.capacity / 4)))


def _spend_leased(slug: str) -> bool:
    lease = _leases.get(slug)
    if lease and lease[0] >= 1 and time.monotonic() < lease[1]:
        lease[0] -= 1
        return True
    return False


def acquire_in_process(policy: ProviderPolicy) -> bool:
    """Take a token where this process can alone (no limit, or a token of its lease left);
    False: none taken, ask `acquire`."""
    if not settings.PROVIDER_RATE_LIMITER_ENABLED or policy.tokens_per_second <= 0:
        return True
    return _spend_leased(policy.slug)


def acquire(policy: ProviderPolicy) -> None:
    if acquire_in_process(policy):
        return
    slug, rate, capacity = policy.slug, policy.tokens_per_second, policy.capacity
    most = lease_size(policy)
    deadline = time.monotonic() + settings.PROVIDER_RATE_LIMITER_MAX_WAIT
    waited = False
    while True:
        now = time.time()
        taken, wait = store().update(
            key(slug),
            lambda s, now=now: take(s, now, rate, capacity, most),
            script=(TAKE_LUA, [now, rate, capacity, most]),
        )
        if taken:
            if taken > 1:
                lease_ends = time.monotonic() + settings.PROVIDER_RATE_LIMITER_LEASE_SECONDS
                _leases.set(slug, [taken - 1, lease_ends])
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

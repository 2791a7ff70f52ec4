"""The resilient call every provider request goes through (resilience.client.ProviderClient).

    cache (GET) → retries (tenacity) → [breaker → limiter → one attempt → metrics]

A cache hit makes no network call, so it takes no token and is not refused by an open
breaker. Calls under `call_policy(fresh=True)` (price polls, health checks, Test connection)
skip the lookup but still store what they get; inside them, `reference_data()` calls (no
prices: context lengths, task tags) read the cache again.

Each attempt asks the breaker first (an open breaker fails fast, spending no token), then
waits for a token, then goes out; its outcome feeds the breaker and the metrics.
Retries cover transient failures only (5xx, timeouts, connection errors, 429), and a refusal
by our own breaker or limiter ends them.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

import httpx
from django.conf import settings
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    wait_exponential,
    wait_random,
)

from resilience import breaker, cache, limiter, metrics, store
from resilience.errors import (
    OK,
    DeadlineExceeded,
    ProviderError,
    RateLimited,
    RateLimitExceeded,
    outcome_of,
)
from resilience.policy import ProviderPolicy, current_policy


class Sender(Protocol):
    """What a call needs of the client making it (resilience.client.ProviderClient)."""

    slug: str
    policy: ProviderPolicy

    def send(self, request: httpx.Request) -> httpx.Response: ...


logger = logging.getLogger(__name__)


def forget_local_state() -> None:
    """Drop what this process keeps between calls (breaker reads, unspent token leases, the
    metrics window it read) and write the counters it holds: afterwards it sees only the
    shared state."""
    breaker.forget()
    limiter.forget()
    metrics.forget()
    store.flush()


def call(client: Sender, request: httpx.Request) -> httpx.Response:
    key = cache.key_for(client.slug, request) if cache.applies(request) else None
    generation = None
    if key and not current_policy().fresh:
        hit, generation = cache.lookup(client.slug, key)
        if hit is not None:
            return hit
    response = retrying(request)(attempt, client, request)
    if key and response.is_success:
        cache.save(client.slug, key, response, generation)
    return response


def attempt(client: Sender, request: httpx.Request) -> httpx.Response:
    slug = client.slug
    remaining = current_policy().remaining()
    if remaining is not None:
        if remaining <= 0:
            raise DeadlineExceeded(f"{slug}: gave up: the time allowed for this work ran out")
        # This attempt may not outlast the deadline either.
        timeout = min(client.policy.timeout, remaining)
        request.extensions["timeout"] = httpx.Timeout(timeout, connect=min(timeout, 10)).as_dict()
    seen = breaker.before_call(slug)
    try:
        limiter.acquire(client.policy)
    except RateLimitExceeded:
        breaker.after_call(slug, None, seen)
        raise
    started = time.monotonic()
    try:
        response = client.send(request)
    except ProviderError as exc:
        outcome = outcome_of(exc)
        breaker.after_call(slug, outcome, seen)
        metrics.record(slug, outcome, time.monotonic() - started)
        raise
    except BaseException:
        breaker.after_call(slug, None, seen)
        raise
    breaker.after_call(slug, OK, seen)
    metrics.record(slug, OK, time.monotonic() - started)
    return response


def retrying(request: httpx.Request) -> Retrying:
    retries = current_policy().max_retries
    if retries is None:
        retries = settings.PROVIDER_MAX_RETRIES
    return Retrying(
        retry=retry_if_exception(lambda exc: retryable(exc, request.method)),
        stop=stop_any(stop_after_attempt(retries + 1), retry_after_too_long, past_deadline),
        wait=backoff,
        before_sleep=log_retry,
        reraise=True,
    )


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def retryable(exc: BaseException, method: str) -> bool:
    """Transient failures only. A POST or PUT (an inference, a rented instance) is retried
    only when the provider surely did not act on it: a 429, or a connection never made; a
    5xx or a timeout may have come after the work was done, so it goes to the caller."""
    if not (isinstance(exc, ProviderError) and exc.transient):
        return False
    if method in SAFE_METHODS or isinstance(exc, RateLimited):
        return True
    return isinstance(exc.__cause__, NEVER_SENT)


def backoff(state: RetryCallState) -> float:
    """The provider's Retry-After when it sent one, else exponential backoff with jitter.
    A 429 without Retry-After (Vast's) waits at least one interval of the provider's own
    rate (its policy's requests per minute), so the retries never come faster than it allows."""
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        return exc.retry_after
    exponential = wait_exponential(
        multiplier=settings.PROVIDER_RETRY_BASE_DELAY, max=settings.PROVIDER_RETRY_MAX_DELAY
    )
    wait = (exponential + wait_random(0, settings.PROVIDER_RETRY_JITTER))(state)
    if isinstance(exc, RateLimited):
        client: Sender = state.args[0]
        per_minute = client.policy.rate_limit
        if per_minute > 0:
            wait = max(wait, min(60 / per_minute, settings.PROVIDER_RETRY_MAX_DELAY))
    return wait


def retry_after_too_long(state: RetryCallState) -> bool:
    """A Retry-After beyond PROVIDER_RETRY_MAX_DELAY is not slept through in a worker: the
    RateLimited error (with its retry_after) goes to the caller at once."""
    exc = state.outcome.exception() if state.outcome else None
    return (
        isinstance(exc, RateLimited)
        and exc.retry_after is not None
        and exc.retry_after > settings.PROVIDER_RETRY_MAX_DELAY
    )


def past_deadline(state: RetryCallState) -> bool:
    """No retry whose wait would end after the deadline (the error goes to the caller)."""
    remaining = current_policy().remaining()
    return remaining is not None and remaining <= (state.upcoming_sleep or 0)


def log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0
    logger.info("retrying after %s (attempt %d, waiting %.2fs)", exc, state.attempt_number, wait)

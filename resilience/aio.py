"""The async outbound call, for a proxy: one shared `httpx.AsyncClient`, a streamed response.

    breaker → limiter → one attempt (headers only) → metrics

It is `resilience.calls.attempt` for an event loop: the same breaker, token bucket and metrics
functions (run in a worker thread, since the shared store is a blocking client), the same
error family, the same `raise_for_status`. What it leaves out, on purpose: the response cache
(an inference is never answered twice) and retries (a proxy tries the *next* provider instead,
and a POST may not be repeated after a 5xx or a timeout anyway). The response comes back open,
its body unread, so a caller can pass a stream on chunk by chunk; the attempt counts as done
when the headers arrive (its latency is the time to first byte).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from django.conf import settings

from resilience import breaker, limiter, metrics
from resilience.client import ERROR_BODY_BYTES, keep_body, raise_for_status
from resilience.errors import OK, ProviderError, RateLimitExceeded, Transient, outcome_of
from resilience.policy import ProviderPolicy

_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}


def client() -> httpx.AsyncClient:
    """The process's one AsyncClient (per event loop: a client is bound to the loop it runs
    on). Pooled connections are what keep a proxy's added time small."""
    loop = asyncio.get_running_loop()
    found = _clients.get(loop)
    if found is None:
        for old in [other for other in _clients if other.is_closed()]:
            del _clients[old]
        found = _clients[loop] = httpx.AsyncClient(
            headers={"User-Agent": settings.HTTP_USER_AGENT},
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
            follow_redirects=False,
        )
    return found


def admit(policy: ProviderPolicy) -> dict:
    """Ask the breaker, then take a token (sync: the shared store's client blocks). Returns
    what `open_stream(admitted=…)` needs; a caller already in a worker thread calls it there
    and saves a thread hop. Raises CircuitBreakerOpen or RateLimitExceeded."""
    seen = breaker.before_call(policy.slug)
    try:
        limiter.acquire(policy)
    except RateLimitExceeded:
        breaker.after_call(policy.slug, None, seen)
        raise
    return seen


def _settle(slug: str, outcome: str | None, seen: dict, seconds: float) -> None:
    breaker.after_call(slug, outcome, seen)
    if outcome is not None:
        metrics.record(slug, outcome, seconds)


_background: set[asyncio.Task] = set()


def _settle_later(slug: str, seen: dict, seconds: float) -> None:
    """A success is written after the answer has gone on: nothing waits for it."""
    task = asyncio.create_task(asyncio.to_thread(_settle, slug, OK, seen, seconds))
    _background.add(task)
    task.add_done_callback(_background.discard)


async def open_stream(
    policy: ProviderPolicy, method: str, path: str, *, admitted: dict | None = None, **kwargs: Any
) -> httpx.Response:
    """One attempt through the provider's breaker and limiter; the response open and 2xx.

    `admitted`: what `admit(policy)` returned, when the caller has already asked. Raises the
    typed errors (CircuitBreakerOpen, RateLimitExceeded, Transient, RateLimited, InvalidKey…)
    with the provider's error body read and closed. The caller must close a returned response
    (`await response.aclose()`)."""
    seen = admitted if admitted is not None else await asyncio.to_thread(admit, policy)
    url = policy.base_url.rstrip("/") + path
    timeout = httpx.Timeout(policy.timeout, connect=min(policy.timeout, 10.0))
    started = time.monotonic()
    try:
        request = client().build_request(method, url, timeout=timeout, **kwargs)
        response = await _send(policy.slug, request, started)
        if response.status_code >= 400:
            await _read_error(response)
            raise_for_status(policy.slug, response)
    except ProviderError as exc:
        await asyncio.to_thread(
            _settle, policy.slug, outcome_of(exc), seen, time.monotonic() - started
        )
        raise
    except BaseException:
        await asyncio.to_thread(_settle, policy.slug, None, seen, 0.0)
        raise
    _settle_later(policy.slug, seen, time.monotonic() - started)
    return response


async def _read_error(response: httpx.Response) -> None:
    """An error answer's start, for its message: a provider's 50 MB error page is not read."""
    body = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) >= ERROR_BODY_BYTES:
                break
    finally:
        await response.aclose()
    keep_body(response, body[:ERROR_BODY_BYTES])


async def _send(slug: str, request: httpx.Request, started: float) -> httpx.Response:
    try:
        return await client().send(request, stream=True)
    except httpx.TimeoutException as exc:
        elapsed = time.monotonic() - started
        raise Transient(f"{slug}: timed out after {elapsed:.1f}s ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise Transient(f"{slug}: connection failed ({type(exc).__name__}: {exc})") from exc

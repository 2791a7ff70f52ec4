"""The async outbound call, for a proxy: one shared pool of connections, a streamed response.

    breaker → limiter → one attempt (headers only) → metrics

It is `resilience.calls.attempt` for an event loop: the same breaker, token bucket and metrics
functions, the same error family, the same `raise_for_status`. Where they must reach the
shared store (a blocking client) they run in a worker thread; the common success touches it
not at all (the breaker's CLOSED state and leased tokens are held in-process, metrics are
written behind), so it settles on the loop. What it leaves out, on purpose: the response cache
(an inference is never answered twice) and retries (a proxy tries the *next* provider instead,
and a POST may not be repeated after a 5xx or a timeout anyway). The response comes back open,
its body unread, so a caller can pass a stream on chunk by chunk; the attempt counts as done
when the headers arrive (its latency is the time to first byte).
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

import aiohttp
import httpx
from django.conf import settings
from httpx_aiohttp import AiohttpTransport

from resilience import breaker, limiter, metrics
from resilience.client import ERROR_BODY_BYTES, Capped, keep_body, raise_for_status
from resilience.errors import OK, TIMEOUTS, ProviderError, RateLimitExceeded, Transient, outcome_of
from resilience.policy import ProviderPolicy
from resilience.store import store

# Errors a response's body can raise while it is read (a stream cut off, a read timing out):
# httpx's family, and aiohttp's where the transport does not translate one.
READ_ERRORS: tuple[type[BaseException], ...] = (httpx.HTTPError, aiohttp.ClientError, TimeoutError)

_transports: dict[asyncio.AbstractEventLoop, AiohttpTransport] = {}


def transport() -> AiohttpTransport:
    """The process's one pool of keep-alive connections (per event loop: a connection is
    bound to the loop it runs on). Pooled connections are what keep a proxy's added time
    small. Calls go to the transport, below `httpx.AsyncClient`: a proxy wants none of the
    client's layers around each request (a cookie jar would keep one user's answer's cookies
    and send them on the next user's request; auth flows, redirects, event hooks), and they
    were ~15% of a call's CPU.

    The pool is aiohttp's, behind httpx's request, response and error types (httpx-aiohttp):
    a streamed call cost 0.3–0.45 ms of CPU and ~1 ms on the wall against 0.8–1.2 ms and
    2–3 ms through httpcore's pool (same loopback upstream, 1,000 calls, uvloop)."""
    loop = asyncio.get_running_loop()
    found = _transports.get(loop)
    if found is None:
        for old in [other for other in _transports if other.is_closed()]:
            del _transports[old]
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
        found = _transports[loop] = AiohttpTransport(limits=limits)
    return found


async def close() -> None:
    """Close this event loop's pool (a server shutting down)."""
    found = _transports.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.aclose()


@functools.lru_cache(maxsize=1024)
def _url(base_url: str, path: str) -> httpx.URL:
    return httpx.URL(base_url.rstrip("/") + path)


@functools.lru_cache(maxsize=64)
def _timeout(seconds: float) -> dict[str, float]:
    return httpx.Timeout(seconds, connect=min(seconds, 10.0)).as_dict()


def build_request(
    policy: ProviderPolicy, method: str, path: str, headers: dict[str, str], **kwargs: Any
) -> httpx.Request:
    """A request to the provider. Asks for no compression: a stream is passed on as the
    provider's raw bytes, which must be the text they say they are."""
    headers = {
        "User-Agent": settings.HTTP_USER_AGENT, "Accept-Encoding": "identity", **headers
    }  # fmt: skip
    return httpx.Request(
        method, _url(policy.base_url, path), headers=headers,
        extensions={"timeout": _timeout(policy.timeout)}, **kwargs,
    )  # fmt: skip


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


def admit_in_process(policy: ProviderPolicy) -> dict | None:
    """`admit`'s answer where this process can give it with no round trip (a CLOSED breaker
    read within the local TTL, a token of its lease left), for a caller on the event loop;
    None: ask `admit` in a thread."""
    seen = breaker.closed_in_process(policy.slug)
    if seen is None or not limiter.acquire_in_process(policy):
        return None
    return seen


def _settle(slug: str, outcome: str | None, seen: dict, seconds: float) -> None:
    breaker.after_call(slug, outcome, seen)
    if outcome is not None:
        metrics.record(slug, outcome, seconds)


_background: set[asyncio.Task] = set()


def _settle_later(slug: str, seen: dict, seconds: float) -> None:
    """A success is written after the answer has gone on: nothing waits for it. Usually
    there is nothing to write now (a quiet CLOSED breaker; metrics the store writes behind):
    then it is done here, with no thread."""
    if breaker.quiet(seen) and store().writes_behind():
        metrics.record(slug, OK, seconds)
        return
    task = asyncio.create_task(asyncio.to_thread(_settle, slug, OK, seen, seconds))
    _background.add(task)
    task.add_done_callback(_background.discard)


async def open_stream(
    policy: ProviderPolicy,
    method: str,
    path: str,
    *,
    admitted: dict | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """One attempt through the provider's breaker and limiter; the response open and 2xx.

    `admitted`: what `admit(policy)` returned, when the caller has already asked. Raises the
    typed errors (CircuitBreakerOpen, RateLimitExceeded, Transient, RateLimited, InvalidKey…)
    with the provider's error body read and closed. The caller must close a returned response
    (`await response.aclose()`)."""
    seen = admitted if admitted is not None else await asyncio.to_thread(admit, policy)
    started = time.monotonic()
    try:
        request = build_request(policy, method, path, headers or {}, **kwargs)
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


async def read_body(slug: str, response: httpx.Response) -> bytes:
    """A whole answer, at most PROVIDER_MAX_RESPONSE_BYTES: beyond, BadPayload (a runaway
    answer is not held in memory), as `resilience.client` does for a poll."""
    body = Capped(slug, response, settings.PROVIDER_MAX_RESPONSE_BYTES)
    async for chunk in response.aiter_raw():
        body.add(chunk)
    return bytes(body)


async def _read_error(response: httpx.Response) -> None:
    """An error answer's start, for its message: a provider's 50 MB error page is not read."""
    body = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) >= ERROR_BODY_BYTES:
                break
    except READ_ERRORS:  # cut off: the status says enough, with what came of the body
        pass
    finally:
        await response.aclose()
    keep_body(response, body[:ERROR_BODY_BYTES])


async def _send(slug: str, request: httpx.Request, started: float) -> httpx.Response:
    try:
        response = await transport().handle_async_request(request)
    except (httpx.TransportError, aiohttp.ClientError, TimeoutError) as exc:
        # Told by what happened underneath (the error chained is that): the transport files
        # some of aiohttp's errors, a connection refused among them, under httpx's timeouts.
        cause = exc.__cause__ if isinstance(exc, httpx.TransportError) and exc.__cause__ else exc
        if isinstance(cause, TIMEOUTS):
            elapsed = time.monotonic() - started
            message = f"{slug}: timed out after {elapsed:.1f}s ({type(cause).__name__})"
        else:
            message = f"{slug}: connection failed ({type(cause).__name__}: {cause})"
        raise Transient(message) from cause
    response.request = request
    return response

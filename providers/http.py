"""The one outbound HTTP seam: every adapter call goes through `ProviderClient.request()`.

It builds the httpx client from the provider's settings (<PREFIX>_BASE_URL, _TIMEOUT) and maps
every failure to a small typed family, with secrets scrubbed from every message.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx
from django.conf import settings

from providers.secrets import scrub


class ProviderError(Exception):
    """Base of every failure talking to a provider. Messages never carry a key."""

    transient = False  # worth retrying and counts against the circuit breaker

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(scrub(message))
        self.status = status


class MissingKey(ProviderError):
    pass


class InvalidKey(ProviderError):
    """401: the key is wrong."""


class Forbidden(ProviderError):
    """403: the key is expired, revoked or lacks access."""


class NotFound(ProviderError):
    pass


class RateLimited(ProviderError):
    transient = True

    def __init__(self, message: str, *, retry_after: float | None = None, status: int = 429):
        super().__init__(message, status=status)
        self.retry_after = retry_after


class Transient(ProviderError):
    """5xx, timeouts and connection errors."""

    transient = True


class BadPayload(ProviderError):
    """The provider answered, but not in the shape its documentation promises."""


class NotSupported(ProviderError):
    pass


class CircuitBreakerOpen(ProviderError):
    """The provider's shared circuit breaker is open: refused without a network call."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RateLimitExceeded(ProviderError):
    """Our own token bucket for the provider stayed empty longer than we may wait."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class CallPolicy:
    """How the calls made in a `with call_policy(...)` block behave (health.client)."""

    fresh: bool = False  # never answered from the response cache: the provider is asked
    max_retries: int | None = None  # None: PROVIDER_MAX_RETRIES


_policy: ContextVar[CallPolicy | None] = ContextVar("provider_call_policy", default=None)


@contextmanager
def call_policy(**changes: Any) -> Iterator[CallPolicy]:
    """E.g. a price poll: `with call_policy(fresh=True): adapter.list_models()`. It reaches
    every ProviderClient used inside, including ones an adapter creates on the way."""
    policy = replace(current_policy(), **changes)
    token = _policy.set(policy)
    try:
        yield policy
    finally:
        _policy.reset(token)


def current_policy() -> CallPolicy:
    return _policy.get() or CallPolicy()


def reference_data() -> AbstractContextManager[CallPolicy]:
    """Around an adapter's calls that fetch neither prices nor availability (context lengths,
    task tags): a cached answer within its TTL will do, even inside a price poll, whose own
    price calls stay fresh. E.g. DeepInfra's poll reuses its health check's model list."""
    return call_policy(fresh=False)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or HTTP date) or IETF `RateLimit` (t=)."""
    value = response.headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value)
            if parsed:
                return max(0.0, (parsed - datetime.now(UTC)).total_seconds())
    # Hugging Face: RateLimit: "api";r=0;t=55 (draft-ietf-httpapi-ratelimit-headers)
    match = re.search(r"\bt=(\d+(?:\.\d+)?)", response.headers.get("ratelimit", ""))
    return float(match.group(1)) if match else None


def _error_text(response: httpx.Response) -> str:
    """The provider's own error message, if it sent one, shortened."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        err = body.get("error") or body.get("detail") or body.get("msg") or body.get("message")
        if isinstance(err, dict):
            err = err.get("message") or err.get("msg")
        if isinstance(err, str) and isinstance(body.get("msg"), str) and body["msg"] != err:
            err = f"{err}: {body['msg']}"  # Vast: a code in "error", the sentence in "msg"
        if err:
            return str(err)[:200]
    return ""


def raise_for_status(slug: str, response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = _error_text(response)
    message = f"{slug}: HTTP {status} from {response.request.url.path}" + (
        f": {detail}" if detail else ""
    )
    if status == 401:
        raise InvalidKey(message, status=status)
    if status == 403:
        raise Forbidden(message, status=status)
    if status == 404:
        raise NotFound(message, status=status)
    if status == 429:
        raise RateLimited(message, retry_after=retry_after_seconds(response))
    if status >= 500:
        raise Transient(message, status=status)
    raise ProviderError(message, status=status)


class ProviderClient:
    """An httpx client bound to one provider, counting the calls it makes."""

    def __init__(self, slug: str, env_prefix: str, *, base_url: str | None = None):
        self.slug = slug
        self.env_prefix = env_prefix
        self.calls = 0
        timeout = getattr(settings, f"{env_prefix}_TIMEOUT")
        self._http = httpx.Client(
            base_url=base_url or getattr(settings, f"{env_prefix}_BASE_URL"),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"User-Agent": settings.HTTP_USER_AGENT, "Accept": "application/json"},
            follow_redirects=True,
        )

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """A provider call through the shared breaker, limiter, cache and retries."""
        from health.client import call

        return call(self, self._http.build_request(method, url, **kwargs))

    def send(self, request: httpx.Request) -> httpx.Response:
        """One bare attempt: no breaker, limiter, cache or retry (health.client adds them)."""
        self.calls += 1
        started = time.monotonic()
        try:
            response = self._http.send(request)
        except httpx.TimeoutException as exc:
            elapsed = time.monotonic() - started
            raise Transient(
                f"{self.slug}: timed out after {elapsed:.1f}s ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise Transient(
                f"{self.slug}: connection failed ({type(exc).__name__}: {exc})"
            ) from exc
        raise_for_status(self.slug, response)
        return response

    def get_json(self, url: str, **kwargs: Any) -> Any:
        return self.json(self.request("GET", url, **kwargs))

    def json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise BadPayload(
                f"{self.slug}: {response.request.url.path} did not return JSON "
                f"({response.headers.get('content-type', 'no content type')})"
            ) from exc

    def paginate(self, url: str, **kwargs: Any):
        """Yield each page's JSON, following `Link: <…>; rel="next"` headers."""
        while url:
            response = self.request("GET", url, **kwargs)
            yield self.json(response)
            url = response.links.get("next", {}).get("url")
            kwargs.pop("params", None)  # the next link carries its own query

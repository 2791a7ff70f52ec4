"""The one outbound HTTP seam: every adapter call goes through `ProviderClient.request()`.

It builds the httpx client from the provider's policy (base URL, timeout) and maps every
failure to the typed family of resilience.errors, with secrets scrubbed from every message.
`request()` is the resilient call (resilience.calls); `send()` is one bare attempt.
"""

from __future__ import annotations

import email.utils
import re
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from django.conf import settings

from resilience import calls
from resilience.errors import (
    BadPayload,
    Forbidden,
    InvalidKey,
    NotFound,
    ProviderError,
    RateLimited,
    Transient,
)
from resilience.policy import ProviderPolicy


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


# An error answer is read for its message only (the first 200 characters are kept).
ERROR_BODY_BYTES = 64 * 1024


def read_body(slug: str, response: httpx.Response, cap: int) -> None:
    """Read a streamed answer into `response.content`, never more than `cap` bytes of it
    (decoded): refused at once when Content-Length says it is bigger, else cut off as soon as
    it grows past `cap`, so a 50 MB answer costs `cap` bytes of memory, not 50 MB. A bigger
    answer is a BadPayload (the caller keeps what it had); an error answer keeps its start."""
    if response.status_code >= 400:
        keep_body(response, _first_bytes(response, ERROR_BODY_BYTES))
        return
    body = Capped(slug, response, cap)
    for chunk in response.iter_bytes():
        body.add(chunk)
    keep_body(response, body)


def _first_bytes(response: httpx.Response, size: int) -> bytearray:
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) >= size:
            break
    return body[:size]


def keep_body(response: httpx.Response, body: bytes | bytearray) -> None:
    # What httpx's own Response.read() stores: .content, .text and .json() read it from here.
    response._content = bytes(body)


class Capped(bytearray):
    """An answer's body as it is read, never past `cap` bytes: BadPayload at once when its
    Content-Length says it is bigger, else as soon as it grows past `cap` (the sync read
    above and the broker's async one, resilience.aio.read_body)."""

    def __init__(self, slug: str, response: httpx.Response, cap: int) -> None:
        super().__init__()
        self.slug, self.response, self.cap = slug, response, cap
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise self.too_large(f"it declares {_mb(int(declared))}, not read")

    def add(self, chunk: bytes) -> None:
        self += chunk
        if len(self) > self.cap:
            raise self.too_large(f"cut off after reading {_mb(len(self))}")

    def too_large(self, how: str) -> BadPayload:
        return BadPayload(
            f"{self.slug}: the answer from {self.response.request.url.path} is larger than "
            f"PROVIDER_MAX_RESPONSE_BYTES ({_mb(self.cap)}): {how}"
        )


def _mb(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB"


class ProviderClient:
    """An httpx client bound to one provider, counting the calls it makes."""

    def __init__(self, policy: ProviderPolicy):
        self.policy = policy
        self.slug = policy.slug
        self.calls = 0
        self.last_status: int | None = None  # of the last answer request() returned
        timeout = policy.timeout
        self._http = httpx.Client(
            base_url=policy.base_url,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"User-Agent": settings.HTTP_USER_AGENT, "Accept": "application/json"},
            follow_redirects=True,
        )

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """A provider call through the shared breaker, limiter, cache and retries."""
        response = calls.call(self, self._http.build_request(method, url, **kwargs))
        self.last_status = response.status_code
        return response

    def send(self, request: httpx.Request) -> httpx.Response:
        """One bare attempt: no breaker, limiter, cache or retry (resilience.calls adds them)."""
        self.calls += 1
        started = time.monotonic()
        try:
            response = self._http.send(request, stream=True)
            try:
                read_body(self.slug, response, settings.PROVIDER_MAX_RESPONSE_BYTES)
            finally:
                response.close()  # unread bytes are dropped with the connection
        except httpx.TimeoutException as exc:
            elapsed = time.monotonic() - started
            raise Transient(
                f"{self.slug}: timed out after {elapsed:.1f}s ({type(exc).__name__})"
            ) from exc
        except httpx.LocalProtocolError:
            # Our own request was malformed, e.g. a key with a newline in a header. httpx's
            # message quotes the header's value, which is the key: it is never repeated.
            raise ProviderError(
                f"{self.slug}: request not sent: a header value is not allowed "
                "(check the API key for stray whitespace or characters)"
            ) from None
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

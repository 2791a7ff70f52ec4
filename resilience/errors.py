"""The one error vocabulary for calls to a provider.

Each class carries its `code` (a short machine word: metrics, health checks, JSON answers) and
its `label` (what ops read: Test connection, pages, logs). Nothing else maps classes to words:
read `exc.code` and `exc.label`, or `outcome_of(exc)` where there may be no exception.
Messages never carry a key: they are scrubbed on the way in.
"""

from __future__ import annotations

import httpx

from resilience.secrets import scrub

OK = "ok"


class ProviderError(Exception):
    """Base of every failure talking to a provider."""

    code = "error"
    label = "error"
    transient = False  # worth retrying and counts against the circuit breaker

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(scrub(message))
        self.status = status
        if status and 400 <= status < 500 and type(self).code == "error":
            self.code = "client_error"  # an HTTP 4xx with no class of its own


class MissingKey(ProviderError):
    code, label = "missing_key", "no key"
    key_problem = "no API key configured"


class InvalidKey(ProviderError):
    """401: the key is wrong."""

    code, label = "invalid_key", "invalid key"
    key_problem = "the API key was rejected (401)"


class Forbidden(ProviderError):
    """403: the key is expired, revoked or lacks access."""

    code, label = "forbidden", "expired"
    key_problem = "the API key is expired or lacks access (403)"


class UndecryptableKey(ProviderError):
    """The stored key was encrypted under a key this process does not have (a rotation that
    reached the database before this process's settings)."""

    code, label = "undecryptable_key", "key cannot be decrypted"
    key_problem = "the stored API key cannot be decrypted (check GPUBROKER_ENCRYPTION_KEYS)"


class NotFound(ProviderError):
    code, label = "not_found", "not found"


class RateLimited(ProviderError):
    code, label = "rate_limited", "rate limited"
    transient = True

    def __init__(self, message: str, *, retry_after: float | None = None, status: int = 429):
        super().__init__(message, status=status)
        self.retry_after = retry_after


# What a timed-out call raises underneath: httpx's timeouts, and asyncio's (aiohttp's are).
TIMEOUTS = (httpx.TimeoutException, TimeoutError)


class Transient(ProviderError):
    """5xx, timeouts and connection errors: the provider was not reached or failed."""

    label = "unreachable"
    transient = True

    @property
    def code(self) -> str:  # type: ignore[override]
        if self.status:
            return "server_error"
        return "timeout" if isinstance(self.__cause__, TIMEOUTS) else "connection"


class BadPayload(ProviderError):
    """The provider answered, but not in the shape its documentation promises."""

    code, label = "bad_payload", "bad payload"


class DeadlineExceeded(ProviderError):
    """The caller's total time for this work (a poll's PROVIDER_POLL_DEADLINE) ran out before
    the next attempt: no call was made."""

    code, label = "deadline", "took too long"


class NotSupported(ProviderError):
    code, label = "not_supported", "not supported"


class CircuitBreakerOpen(ProviderError):
    """The provider's shared circuit breaker is open: refused without a network call."""

    code, label = "circuit_open", "circuit breaker open"

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RateLimitExceeded(ProviderError):
    """Our own token bucket for the provider stayed empty longer than we may wait."""

    code, label = "rate_limit_exceeded", "our rate limit used up"

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


# Codes for failures the breaker counts: the provider failed or could not be reached.
UNREACHABLE = frozenset({"server_error", "timeout", "connection"})
# Codes saying the key itself is the problem, with what ops should read.
KEY_PROBLEMS = {
    cls.code: cls.key_problem for cls in (MissingKey, InvalidKey, Forbidden, UndecryptableKey)
}


def outcome_of(exc: BaseException | None) -> str:
    """How a call ended, as one code: "ok", a ProviderError's code, or "error" for a bug."""
    if exc is None:
        return OK
    return exc.code if isinstance(exc, ProviderError) else "error"

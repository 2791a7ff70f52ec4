"""What the resilience layer knows of a provider and of a call: values passed in by the caller.

`ProviderPolicy` is one provider's outbound settings (the providers app builds it from
`<PREFIX>_BASE_URL`, `_TIMEOUT`, `_RATE_LIMIT`, `_RATE_LIMIT_BURST`); `CallPolicy` is how
the calls inside a `with call_policy(...)` block behave.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class ProviderPolicy:
    slug: str
    base_url: str
    timeout: float  # seconds for one attempt
    rate_limit: float = 0  # requests per minute; 0: unlimited
    rate_limit_burst: float | None = None  # bucket capacity; None: the rate
    env_prefix: str = ""  # only to name the knobs in messages

    @property
    def tokens_per_second(self) -> float:
        return self.rate_limit / 60

    @property
    def capacity(self) -> float:
        return float(self.rate_limit_burst or self.rate_limit)


@dataclass(frozen=True)
class CallPolicy:
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

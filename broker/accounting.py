"""What one request cost and how it went: its usage record, the key's spend and the broker's
counters (exported on /metrics)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction

from broker.models import ApiKey, CostSource, Outcome, Usage, relaxed_commit
from broker.routing import Candidate, Plan
from resilience.store import store

COUNTERS = "broker:totals"


@dataclass
class Call:
    """One request to the broker, filled in as it goes and recorded once at its end."""

    key: ApiKey
    endpoint: str
    model: str
    stream: bool = False
    started: float = field(default_factory=time.monotonic)
    plan: Plan | None = None
    reserved: bool = False
    admitted: dict | Exception | None = None  # the first candidate's admission, asked ahead
    attempts: list[dict[str, str]] = field(default_factory=list)
    served: Candidate | None = None
    ttfb: float | None = None  # seconds to the first byte from the provider
    usage: dict[str, Any] | None = None
    outcome: str = Outcome.OK
    status: int = 200
    error: str = ""

    def tried(self, candidate: Candidate, code: str, message: str) -> None:
        self.attempts.append(
            {"provider": candidate.provider, "offer": str(candidate.offer_id), "error": code,
             "message": message}
        )  # fmt: skip

    def cost(self) -> tuple[Decimal | None, str]:
        """The provider's own `usage.estimated_cost` (DeepInfra) where given, else tokens ×
        the offer's stored prices; and which of the two it is."""
        usage = self.usage or {}
        stated = usage.get("estimated_cost")
        if isinstance(stated, int | float) and not isinstance(stated, bool):
            return Decimal(str(stated)), CostSource.PROVIDER
        prompt, completion = tokens(usage)
        if self.served and prompt is not None:
            priced = self.served.cost(prompt, completion or 0)
            if priced is not None:
                return priced, CostSource.PRICES
        return None, CostSource.UNKNOWN


def tokens(usage: dict[str, Any]) -> tuple[int | None, int | None]:
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return (
        prompt if isinstance(prompt, int) else None,
        completion if isinstance(completion, int) else None,
    )


def finish(call: Call) -> Usage:
    """Record the request: one Usage row, the spend, the counters. (What each offer was seen
    to do is rolled up from the rows, off the request path: broker.usage.roll_up.)"""
    total = time.monotonic() - call.started
    cost, source = call.cost()
    prompt, completion = tokens(call.usage or {})
    served = call.served
    estimate = call.plan.estimate if call.plan else Decimal(0)
    with transaction.atomic():
        relaxed_commit()
        if cost or call.reserved:
            call.key.settle(estimate, cost or Decimal(0), reserved=call.reserved)
        usage = record(call, served, prompt, completion, cost, source, total)
    count(call, prompt, completion, cost)
    return usage


def record(
    call: Call,
    served: Candidate | None,
    prompt: int | None,
    completion: int | None,
    cost: Decimal | None,
    source: str,
    total: float,
) -> Usage:
    return Usage.objects.create(
        key=call.key,
        endpoint=call.endpoint,
        model=call.model,
        provider=served.provider if served else "",
        offer_id=served.offer_id if served else None,
        upstream_model=served.upstream_id if served else "",
        stream=call.stream,
        attempts=call.attempts,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost_usd=cost,
        cost_source=source,
        ttfb_ms=round(call.ttfb * 1000, 2) if call.ttfb is not None else None,
        total_ms=round(total * 1000, 2),
        outcome=call.outcome,
        status_code=call.status,
        error=call.error,
    )


def count(call: Call, prompt: int | None, completion: int | None, cost: Decimal | None) -> None:
    """Running totals in the shared store, by provider and outcome, for Prometheus."""
    provider = call.served.provider if call.served else "none"
    label = f"{call.endpoint}|{call.model}|{provider}|{call.outcome}"
    fields: dict[str, float] = {
        f"requests|{label}": 1,
        f"prompt_tokens|{label}": prompt or 0,
        f"completion_tokens|{label}": completion or 0,
        f"cost_usd|{label}": float(cost or 0),
    }
    fallbacks = len(call.attempts)
    if fallbacks:
        fields[f"fallbacks|{call.endpoint}|{call.model}"] = fallbacks
    store().incr([(COUNTERS, fields, None)], defer=True)  # written behind, as metrics.record


def totals() -> dict[str, float]:
    return store().read([], [COUNTERS])[1].get(COUNTERS, {})

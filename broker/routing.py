"""Which offers may serve a request, and in which order to try them.

A requested name is resolved by the catalog (providers.llm_models.resolve) to one canonical
model; candidates are that model's available offers on enabled providers that have a usable
key (configured, readable, not found rejected by the latest health check) and an endpoint for
the request, allowed for the broker key, whose breaker is not OPEN and whose success rate is
not under the status rule's 50% (docs/resilience.md). Every offer left out
is kept with the reason, so a 503 can say why each was skipped. The order is the request's
`provider` object (`order`, `only`, `ignore`, `sort`, `allow_fallbacks`, as OpenRouter's) over
the strategy: the request's `sort`, else the key's default.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache

from broker.memo import Memo
from broker.models import ApiKey, Strategy
from providers import llm_models
from providers.models import Kind, Observation, Offer, Provider
from resilience import breaker, metrics
from resilience.errors import UndecryptableKey
from resilience.policy import ProviderPolicy
from resilience.store import store

CHAT, EMBEDDINGS = "chat", "embeddings"
# Offers of these tasks serve embeddings; of these, neither chat nor embeddings.
EMBEDDING_TASKS = frozenset({"embedding", "feature-extraction", "sentence-similarity"})
# Raw tags as some offers stored them, and the task vocabulary's words (providers.vocabulary).
OTHER_TASKS = frozenset(
    {"image", "audio", "moderation", "text-to-image", "text-to-speech", "speech-to-text", "rerank"}
)
# Output tokens assumed for the expected cost when a request sets no max_tokens.
DEFAULT_OUTPUT_TOKENS = 256
MIN_SUCCESS_RATE = 0.5  # the status rule's UNAVAILABLE line
PER_MILLION = Decimal(1_000_000)
OFFERS = Memo()  # a model's offers, with provider, credential and observation
HEALTH = Memo(max_seconds=1.0)  # providers' breaker states and success rates


class RouteError(Exception):
    """A request the broker cannot route: what to answer, in OpenAI's error vocabulary."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None):
        super().__init__(message)
        self.status, self.code, self.param = status, code, param


@dataclass
class Candidate:
    offer_id: int
    provider: str
    upstream_id: str
    policy: ProviderPolicy
    path: str
    api_key: str = field(repr=False)
    usd_per_1m_input: Decimal | None
    usd_per_1m_output: Decimal | None
    latency_ms: float | None
    throughput_tps: float | None
    success_rate: float | None
    expected_cost: Decimal | None = None

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal | None:
        """Tokens × this offer's stored prices (USD per 1M tokens); None when unpriced."""
        if self.usd_per_1m_input is None:
            return None
        output = self.usd_per_1m_output or Decimal(0)
        return (prompt_tokens * self.usd_per_1m_input + completion_tokens * output) / PER_MILLION


@dataclass
class Plan:
    model: str
    endpoint: str
    strategy: str
    candidates: list[Candidate]
    skipped: list[dict[str, str]]
    allow_fallbacks: bool = True
    estimate: Decimal = Decimal(0)  # the most the request can cost: held of the key's budget
    output_cap: int | None = None  # max_tokens the broker sets upstream (a budget, none asked)


def model_offers(name: str) -> tuple[str, list[Offer]]:
    """A requested name's model (its canonical id) and that model's offers, with provider,
    credential and observation: the catalog resolves the name (providers.llm_models.resolve:
    canonical id, alias, or a provider's own id), and every provider's offer of the model is a
    candidate, each called by its own upstream id. ("", []) when the catalog has no such model."""
    model = llm_models.resolve(name)
    if model is None:
        return "", []
    offers = model.offers.filter(kind=Kind.LLM).select_related(
        "provider__credential", "observation"
    )
    return model.canonical, list(offers)


def servable(name: str, endpoint: str) -> tuple[str, list[Offer]]:
    canonical, offers = model_offers(name)
    return canonical, [o for o in offers if serves(o, endpoint)]


def serves(offer: Offer, endpoint: str) -> bool:
    if endpoint == EMBEDDINGS:
        return offer.task in EMBEDDING_TASKS
    return offer.task not in EMBEDDING_TASKS | OTHER_TASKS


def plan(key: ApiKey, body: dict[str, Any], endpoint: str) -> Plan:
    name = body.get("model")
    if not isinstance(name, str) or not name:
        message = "`model` is required: a model's name (string)."
        raise RouteError(400, message, "invalid_request_error", "model")
    canonical, offers = OFFERS.get((name, endpoint), lambda: servable(name, endpoint))
    if not offers:
        raise RouteError(404, unknown_model(name, canonical, endpoint), "model_not_found", "model")
    if not key.allows_model(canonical):
        raise RouteError(403, f"This key may not use `{canonical}`.", "model_not_allowed", "model")
    prefs = provider_prefs(body)
    candidates, skipped = screen(offers, key, endpoint, prefs)
    strategy = prefs.get("sort") or key.strategy
    ranked = rank(candidates, strategy, prefs.get("order") or [], body, canonical)
    allow = prefs.get("allow_fallbacks", True) is not False
    return Plan(canonical, endpoint, strategy, ranked if allow else ranked[:1], skipped, allow)


def unknown_model(name: str, canonical: str, endpoint: str) -> str:
    if not canonical:
        return f"The model `{name}` does not exist."
    what = "an embeddings" if endpoint == EMBEDDINGS else "a chat"
    known = f"`{name}`" if name.lower() == canonical else f"`{name}` (`{canonical}`)"
    return f"The model {known} is not {what} model."


def provider_prefs(body: dict[str, Any]) -> dict[str, Any]:
    prefs = body.get("provider") or {}
    if not isinstance(prefs, dict):
        raise RouteError(400, "`provider` must be an object.", "invalid_request_error", "provider")
    for name in ("order", "only", "ignore"):
        value = prefs.get(name)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise RouteError(
                400, f"`provider.{name}` must be a list of provider slugs.",
                "invalid_request_error", f"provider.{name}",
            )  # fmt: skip
    sort = prefs.get("sort")
    if sort is not None and sort not in Strategy.values:
        choices = ", ".join(Strategy.values)
        raise RouteError(
            400, f"`provider.sort` must be one of {choices}.",
            "invalid_request_error", "provider.sort",
        )  # fmt: skip
    return prefs


def screen(
    offers: list[Offer], key: ApiKey, endpoint: str, prefs: dict[str, Any]
) -> tuple[list[Candidate], list[dict[str, str]]]:
    """Candidates, and every offer left out with why."""
    providers = {o.provider.slug: o.provider for o in offers}
    health = HEALTH.get(tuple(sorted(providers)), lambda: provider_health(list(providers)))
    keys: dict[str, tuple[str, str]] = {}
    candidates, skipped = [], []
    for offer in offers:
        provider = offer.provider
        reason = why_not(offer, provider, key, endpoint, prefs, health[provider.slug], keys)
        if reason:
            skipped.append({"provider": provider.slug, "offer": str(offer.pk), "reason": reason})
            continue
        observed = observation(offer)
        candidates.append(
            Candidate(
                offer_id=offer.pk,
                provider=provider.slug,
                upstream_id=offer.upstream_id,
                policy=provider.policy(),
                path=endpoint_path(provider, endpoint),
                api_key=keys[provider.slug][0],
                usd_per_1m_input=offer.usd_per_1m_input,
                usd_per_1m_output=offer.usd_per_1m_output,
                latency_ms=(observed and observed.latency_ms) or offer.latency_ms,
                throughput_tps=(observed and observed.throughput_tps) or offer.throughput_tps,
                success_rate=health[provider.slug][1],
            )
        )
    return candidates, skipped


def observation(offer: Offer) -> Observation | None:
    try:
        return offer.observation  # select_related by model_offers: no query
    except Observation.DoesNotExist:
        return None


def why_not(
    offer: Offer,
    provider: Provider,
    key: ApiKey,
    endpoint: str,
    prefs: dict[str, Any],
    health: tuple[str, float | None],
    keys: dict[str, tuple[str, str]],
) -> str:
    slug = provider.slug
    if prefs.get("only") and slug not in prefs["only"]:
        return "not in provider.only"
    if slug in (prefs.get("ignore") or []):
        return "in provider.ignore"
    if not key.allows_provider(slug):
        return "provider not allowed for this key"
    if not offer.available:
        return "offer not available at the provider"
    if not provider.is_enabled:
        return f"provider disabled {provider.disabled_by}"
    if not endpoint_path(provider, endpoint):
        return f"provider has no OpenAI-compatible {endpoint} endpoint"
    if slug not in keys:
        keys[slug] = usable_key(provider)
    return keys[slug][1] or health[0]


def usable_key(provider: Provider) -> tuple[str, str]:
    """The broker's key for a provider, or ("", why none may be used): none configured, the
    stored one unreadable, or the latest health check found it rejected (health/checks.py
    writes that on the provider; `Provider.key_finding`)."""
    try:
        key = provider.api_key()
    except UndecryptableKey as exc:
        return "", exc.key_problem
    if not key:
        return "", "no API key configured for the provider"
    finding = provider.key_finding
    if finding:
        return "", f"latest health check: {finding}"
    return key, ""


def endpoint_path(provider: Provider, endpoint: str) -> str:
    adapter = provider.adapter_class()
    return adapter.chat_path if endpoint == CHAT else adapter.embeddings_path


def provider_health(slugs: list[str]) -> dict[str, tuple[str, float | None]]:
    """Per provider: why it may not be called now ("" when it may) and its success rate over
    the metrics window, from one read of the shared store."""
    now = time.time()
    windows = {slug: metrics.window_keys(slug, now) for slug in slugs}
    states, counters = store().read(
        [breaker.key(s) for s in slugs], [k for keys in windows.values() for k in keys]
    )
    result = {}
    for slug in slugs:
        state = breaker.initial() | states.get(breaker.key(slug), {})
        window = metrics.Window.of([counters[k] for k in windows[slug] if k in counters])
        result[slug] = (unavailable(state, window, now), window.success_rate)
    return result


def unavailable(state: dict, window: metrics.Window, now: float) -> str:
    if state["state"] == breaker.OPEN:
        wait = state["opened_at"] + settings.PROVIDER_CIRCUIT_BREAKER_TIMEOUT - now
        if wait > 0:
            return f"circuit breaker open (next trial in {wait:.0f}s)"
    rate = window.success_rate
    if rate is not None and rate < MIN_SUCCESS_RATE:
        return f"unavailable: success rate {rate:.0%} over the last {window.calls} calls"
    return ""


def rank(
    candidates: list[Candidate],
    strategy: str,
    order: list[str],
    body: dict[str, Any],
    model: str,
) -> list[Candidate]:
    prompt, output = expected_tokens(body)
    for c in candidates:
        c.expected_cost = c.cost(prompt, output)
    ranked = by_strategy(candidates, strategy, model)
    if order:  # the listed providers first, in that order; the rest after, by strategy
        place = {slug: i for i, slug in enumerate(order)}
        ranked.sort(key=lambda c: place.get(c.provider, len(order)))
    return ranked


def by_strategy(candidates: list[Candidate], strategy: str, model: str) -> list[Candidate]:
    inf = float("inf")
    by_price = sorted(
        candidates, key=lambda c: (c.expected_cost is None, c.expected_cost or 0, c.offer_id)
    )
    if strategy == Strategy.LATENCY:
        return sorted(by_price, key=lambda c: c.latency_ms if c.latency_ms else inf)
    if strategy == Strategy.THROUGHPUT:
        return sorted(by_price, key=lambda c: -(c.throughput_tps or 0))
    if strategy == Strategy.ROUND_ROBIN and by_price:
        turn = next_turn(model) % len(by_price)
        return by_price[turn:] + by_price[:turn]
    if strategy == Strategy.WEIGHTED:
        # Weighted sampling without replacement (Efraimidis–Spirakis): the higher an offer's
        # success rate (1 when nothing was called lately), the likelier it comes first.
        def draw(c: Candidate) -> float:
            weight = max(0.05, c.success_rate if c.success_rate is not None else 1.0)
            return random.random() ** (1 / weight)

        return sorted(by_price, key=draw, reverse=True)
    return by_price


def next_turn(model: str) -> int:
    """A counter per model shared by every process (the Django cache: Redis in production)."""
    name = f"broker:rr:{model}"
    cache.add(name, 0, timeout=None)
    return cache.incr(name) - 1


def most_tokens(body: dict[str, Any], output_cap: int | None) -> tuple[int, int]:
    """The most tokens a request can cost: every token carries at least one byte, so the
    prompt's UTF-8 bytes bound its tokens; the output is bounded by the request's own
    `max_tokens` or by `output_cap`, the one the broker sets upstream (embeddings: none)."""
    prompt = body.get("messages") or body.get("input") or ""
    text = prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False)
    if body.get("input") is not None and not body.get("messages"):
        return len(text.encode()), 0
    return len(text.encode()), requested_output(body) or output_cap or 0


def requested_output(body: dict[str, Any]) -> int | None:
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    return limit if isinstance(limit, int) and limit > 0 else None


def most_cost(plan: Plan, body: dict[str, Any], output_cap: int | None) -> Decimal:
    """The most this request can cost at whichever candidate serves it (fallback included):
    what a key with a budget holds before the call. Unpriced offers count as free (their
    cost is recorded as unknown)."""
    prompt, output = most_tokens(body, output_cap)
    costs = [c.cost(prompt, output) for c in plan.candidates]
    return max((cost for cost in costs if cost is not None), default=Decimal(0))


def expected_tokens(body: dict[str, Any]) -> tuple[int, int]:
    """Rough prompt tokens (4 characters a token) and the output the request allows."""
    prompt = body.get("messages") or body.get("input") or ""
    chars = len(prompt) if isinstance(prompt, str) else len(json.dumps(prompt))
    output = requested_output(body) or DEFAULT_OUTPUT_TOKENS
    if body.get("input") is not None and not body.get("messages"):
        output = 0  # embeddings produce no tokens
    return max(1, chars // 4), output

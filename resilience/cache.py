"""An adaptive cache of provider GET responses in the Django cache (Redis in production).

Its TTL follows the provider's recent success rate: ≥90% → PROVIDER_CACHE_MAX_TTL,
70–90% → 45 s, 50–70% → PROVIDER_CACHE_TTL, <50% → PROVIDER_CACHE_MIN_TTL; with no recent
calls, PROVIDER_CACHE_TTL. The rate is the one this process read within the last second
(metrics.recent_window), so a miss does not read the shared store for it each time.
Only 2xx answers are kept. The key is a SHA-256 over method, full URL and request headers,
so a key (in Authorization) never appears in a cache key, and two keys never share an entry.
Invalidation bumps a per-provider generation: older entries are then ignored and expire on
their own.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import httpx
from django.conf import settings
from django.core.cache import cache

from resilience import metrics

MIDDLE_TTL = 45


def ttl_for(success_rate: float | None) -> int:
    if success_rate is None:
        return settings.PROVIDER_CACHE_TTL
    if success_rate >= 0.9:
        return settings.PROVIDER_CACHE_MAX_TTL
    if success_rate >= 0.7:
        low, high = settings.PROVIDER_CACHE_MIN_TTL, settings.PROVIDER_CACHE_MAX_TTL
        return max(low, min(MIDDLE_TTL, high))
    if success_rate >= 0.5:
        return settings.PROVIDER_CACHE_TTL
    return settings.PROVIDER_CACHE_MIN_TTL


def applies(request: httpx.Request) -> bool:
    return settings.PROVIDER_CACHE_ENABLED and request.method == "GET"


def _generation_key(slug: str) -> str:
    return f"provider-cache:{slug}:generation"


def key_for(slug: str, request: httpx.Request) -> str:
    headers = sorted((k.lower(), v) for k, v in request.headers.items())
    material = json.dumps([request.method, str(request.url), headers])
    return f"provider-cache:{slug}:{hashlib.sha256(material.encode()).hexdigest()}"


def lookup(slug: str, key: str) -> tuple[httpx.Response | None, int]:
    """The cached response for this request (counting the hit or miss) and the provider's
    cache generation, which `save` stamps on the entry it writes."""
    found = cache.get_many([_generation_key(slug), key])
    generation, entry = found.get(_generation_key(slug), 0), found.get(key)
    if entry is None or entry["generation"] != generation:
        metrics.count(slug, "cache_misses")
        return None, generation
    metrics.count(slug, "cache_hits")
    age = f"hit; age={time.time() - entry['at']:.0f}"
    response = httpx.Response(
        entry["status"],
        headers=[*entry["headers"], ("x-gpubroker-cache", age)],
        content=entry["content"],
        request=httpx.Request(entry["method"], entry["url"]),
    )
    return response, generation


# The body is stored decoded, so the headers describing its transfer encoding do not apply.
DROPPED_HEADERS = {"content-encoding", "content-length", "transfer-encoding", "set-cookie"}


def save(slug: str, key: str, response: httpx.Response, generation: int | None) -> int:
    """Keep a successful response for the provider's current TTL; returns that TTL.
    `generation` is the one seen by the lookup (None: there was none; read it now)."""
    if generation is None:
        generation = cache.get(_generation_key(slug), 0)
    ttl = ttl_for(metrics.recent_window(slug).success_rate)
    entry = {
        "generation": generation,
        "status": response.status_code,
        "headers": [
            (k, v) for k, v in response.headers.multi_items() if k.lower() not in DROPPED_HEADERS
        ],
        "content": response.content,
        "method": response.request.method,
        "url": str(response.request.url),
        "at": time.time(),
    }
    cache.set(key, entry, ttl)
    return ttl


def invalidate(slugs: list[str]) -> None:
    """Forget every cached response of these providers (their entries expire unread)."""
    cache.set_many({_generation_key(slug): time.time_ns() for slug in slugs}, None)


def describe(slug: str, counters: dict[str, float], success_rate: float | None) -> dict[str, Any]:
    hits, misses = int(counters.get("cache_hits", 0)), int(counters.get("cache_misses", 0))
    return {
        "enabled": settings.PROVIDER_CACHE_ENABLED,
        "hits": hits,
        "misses": misses,
        "hit_ratio": round(hits / (hits + misses), 3) if hits + misses else None,
        "current_ttl": ttl_for(success_rate),
    }

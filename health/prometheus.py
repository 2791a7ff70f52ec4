"""GET /metrics: the shared state in Prometheus text format.

A collector that reads resilience.store at scrape time, rather than prometheus-client counters in
process memory: the calls happen in Celery workers and the scrape hits the web process, so
only the shared numbers are true for all of them.
"""

from __future__ import annotations

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from health import status
from providers.models import Provider
from resilience import breaker, metrics

BREAKER_VALUES = {breaker.CLOSED: 0, breaker.HALF_OPEN: 1, breaker.OPEN: 2}
STATUS_VALUES = {status.HEALTHY: 0, status.DEGRADED: 1, status.UNAVAILABLE: 2, status.UNKNOWN: -1}


def gauge(name: str, doc: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"gpubroker_provider_{name}", doc, labels=["provider"])


def counter(name: str, doc: str, *extra: str) -> CounterMetricFamily:
    return CounterMetricFamily(f"gpubroker_provider_{name}", doc, labels=["provider", *extra])


class ProviderCollector:
    def collect(self):
        breaker_state = gauge("circuit_breaker_state", "0 closed, 1 half-open, 2 open.")
        trips = counter("circuit_breaker_trips", "Times the breaker opened.")
        health = gauge("status", "0 healthy, 1 degraded, 2 unavailable, -1 unknown.")
        calls = counter("calls", "Network attempts by outcome class.", "outcome")
        rejected = counter("rejected_calls", "Calls refused by our own breaker or limiter.", "by")
        latency = HistogramMetricFamily(
            "gpubroker_provider_response_seconds", "Response time.", labels=["provider"]
        )
        tokens = gauge("rate_limiter_tokens", "Tokens left in the bucket.")
        hits = counter("cache_hits", "Responses served from the cache.")
        misses = counter("cache_misses", "Cacheable calls not in the cache.")
        last_success = gauge("last_successful_poll_timestamp_seconds", "Unix time, 0: never.")
        for r in status.reports(list(status.annotated(Provider.objects.all()))):
            slug, totals = r.slug, r.totals
            breaker_state.add_metric([slug], BREAKER_VALUES[r.breaker["state"]])
            trips.add_metric([slug], r.breaker["trip_count"])
            health.add_metric([slug], STATUS_VALUES[r.status])
            calls.add_metric([slug, "ok"], totals.get("class:ok", 0))
            for name, n in r.total_errors.items():
                calls.add_metric([slug, name], n)
            rejected.add_metric([slug, "circuit_breaker"], totals.get("breaker_rejected", 0))
            rejected.add_metric([slug, "rate_limiter"], r.limiter["requests_blocked"])
            latency.add_metric([slug], _buckets(totals), totals.get("lat_sum", 0))
            tokens.add_metric([slug], r.limiter["available_tokens"])
            hits.add_metric([slug], r.cache["hits"])
            misses.add_metric([slug], r.cache["misses"])
            when = r.provider.last_success_at
            last_success.add_metric([slug], when.timestamp() if when else 0)
        yield from (breaker_state, trips, health, calls, rejected, latency, tokens)
        yield from (hits, misses, last_success)


def _buckets(totals: dict[str, float]) -> list[tuple[str, float]]:
    """Cumulative (le, count) pairs from the per-bucket counts the store keeps."""
    result, running = [], 0.0
    for bound in [f"{b:g}" for b in metrics.BUCKETS] + ["+Inf"]:
        running += totals.get(f"le:{bound}", 0)
        result.append((bound, running))
    return result


registry = CollectorRegistry(auto_describe=False)
registry.register(ProviderCollector())

"""The broker's counters for /metrics, read from the shared store at scrape time (as the
providers' are, health.prometheus): requests, tokens, cost and fallbacks."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily

from broker import accounting

LABELS = ["endpoint", "model", "provider", "outcome"]
FAMILIES = {
    "requests": "Requests to the broker.",
    "prompt_tokens": "Prompt tokens the providers counted.",
    "completion_tokens": "Completion tokens the providers counted.",
    "cost_usd": "What the requests cost, in USD.",
}


class BrokerCollector:
    def collect(self):
        families = {
            name: CounterMetricFamily(f"gpubroker_broker_{name}", doc, labels=LABELS)
            for name, doc in FAMILIES.items()
        }
        fallbacks = CounterMetricFamily(
            "gpubroker_broker_fallbacks",
            "Candidates that failed before another served (or none did).",
            labels=["endpoint", "model"],
        )
        for field, value in sorted(accounting.totals().items()):
            name, *labels = field.split("|")
            if name in families and len(labels) == len(LABELS):
                families[name].add_metric(labels, value)
            elif name == "fallbacks" and len(labels) == 2:
                fallbacks.add_metric(labels, value)
        yield from families.values()
        yield fallbacks

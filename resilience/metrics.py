"""Per-provider call metrics, shared by every process through resilience.store.

Each network attempt adds to two counter sets: the provider's running totals (calls, errors
by class, a latency histogram: what /metrics exports) and the current minute's (what the
success rate, response times and status are computed from, over PROVIDER_METRICS_WINDOW).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from django.conf import settings

from resilience.errors import OK
from resilience.memo import ProcessMemo
from resilience.store import store

# Latency histogram upper bounds in seconds (the last bucket, +Inf, is implicit).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# How long a process reuses a window it read, for callers that only steer by it (the
# response cache's TTL): a success rate over minutes moves little within a second.
RECENT_SECONDS = 1.0
# Per provider: (time.monotonic() when read, the window's counters summed then).
_recent = ProcessMemo()
forget = _recent.forget


def stats_key(slug: str) -> str:
    return f"stats:{slug}"


def window_key(slug: str, minute: int) -> str:
    return f"window:{slug}:{minute}"


def window_keys(slug: str, now: float | None = None) -> list[str]:
    """The minutes making up the window, the current one included."""
    minute = int((now or time.time()) // 60)
    minutes = max(1, math.ceil(settings.PROVIDER_METRICS_WINDOW / 60))
    return [window_key(slug, m) for m in range(minute - minutes + 1, minute + 1)]


def bucket_of(seconds: float) -> str:
    return next((f"le:{b:g}" for b in BUCKETS if seconds <= b), "le:+Inf")


def record(slug: str, outcome: str, seconds: float) -> None:
    """One network attempt: its outcome class and how long it took."""
    sample = {
        "calls": 1,
        "ok": float(outcome == OK),
        "lat_sum": seconds,
        bucket_of(seconds): 1,
        f"class:{outcome}": 1,
    }
    now_key = window_key(slug, int(time.time() // 60))
    remembered = _recent.get(slug)
    if remembered:  # this process's own calls count in the window it remembers, at once
        _add(remembered[1], sample)
    store().incr(
        [
            (stats_key(slug), sample, None),
            (now_key, sample, settings.PROVIDER_METRICS_WINDOW + 120),
        ],
        defer=True,
    )


def errors_by_class(counters: dict[str, float]) -> dict[str, int]:
    """{"server_error": 3, …} from counters holding "class:<outcome>" fields."""
    return {
        name.removeprefix("class:"): int(n)
        for name, n in sorted(counters.items())
        if name.startswith("class:") and name != f"class:{OK}"
    }


def count(slug: str, field: str) -> None:
    """Count an event that is not a network attempt (a cache hit, a blocked call…)."""
    store().incr([(stats_key(slug), {field: 1}, None)], defer=True)


@dataclass(frozen=True)
class Window:
    calls: int
    ok: int
    avg_ms: float | None
    p95_ms: float | None
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def success_rate(self) -> float | None:
        return self.ok / self.calls if self.calls else None

    @classmethod
    def of(cls, minutes: list[dict[str, float]]) -> Window:
        total: dict[str, float] = {}
        for counters in minutes:
            _add(total, counters)
        calls = int(total.get("calls", 0))
        if not calls:
            return cls(0, 0, None, None)
        p95 = quantile(0.95, total)
        return cls(
            calls,
            int(total.get("ok", 0)),
            round(1000 * total.get("lat_sum", 0) / calls, 1),
            round(1000 * p95, 1) if p95 is not None else None,
            errors_by_class(total),
        )


def window(slug: str) -> Window:
    keys = window_keys(slug)
    return Window.of(list(store().read([], keys)[1].values()))


def recent_window(slug: str) -> Window:
    """`window(slug)` as this process read it within RECENT_SECONDS, with its own calls since
    added: no round trip (nor flush of this process's counters) for every caller; other
    processes' calls count within that time."""
    hit = _recent.get(slug)
    if not hit or time.monotonic() - hit[0] >= RECENT_SECONDS:
        total: dict[str, float] = {}
        for counters in store().read([], window_keys(slug))[1].values():
            _add(total, counters)
        hit = (time.monotonic(), total)
        _recent.set(slug, hit)
    return Window.of([hit[1]])


def _add(total: dict[str, float], counters: dict[str, float]) -> None:
    for name, value in counters.items():
        total[name] = total.get(name, 0) + value


def quantile(q: float, counters: dict[str, float]) -> float | None:
    """Estimate a latency quantile from histogram buckets, as Prometheus' histogram_quantile
    does: linear inside the bucket; in the open-ended bucket, its lower bound."""
    counts = [counters.get(f"le:{b:g}", 0) for b in BUCKETS] + [counters.get("le:+Inf", 0)]
    total = sum(counts)
    if not total:
        return None
    rank, seen, lower = q * total, 0.0, 0.0
    for upper, n in zip((*BUCKETS, math.inf), counts, strict=True):
        if n and seen + n >= rank:
            if upper == math.inf:
                return lower
            return lower + (upper - lower) * (rank - seen) / n
        seen += n
        lower = upper
    return lower

"""What the health pages, the JSON API and /metrics say about each provider.

The status rule (docs/resilience.md), first match wins:
- UNKNOWN      the provider is disabled;
- UNAVAILABLE  breaker OPEN, or the latest health check that could tell found no key or a
               rejected key (for the key still in effect), or success rate < 50%;
- DEGRADED     breaker HALF_OPEN;
- UNKNOWN      nothing was called in the metrics window;
- DEGRADED     success rate < 90%;
- HEALTHY      otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import TruncHour
from django.utils import timezone

from health.models import HealthCheck
from providers.bars import scale
from providers.models import PollRun, Provider
from resilience import breaker, cache, limiter, metrics
from resilience.store import UNREACHABLE, store

HEALTHY, DEGRADED, UNAVAILABLE, UNKNOWN = "HEALTHY", "DEGRADED", "UNAVAILABLE", "UNKNOWN"


def annotated(providers: QuerySet[Provider]) -> QuerySet[Provider]:
    """Providers with their latest health check and latest errors, in one query."""
    checks = HealthCheck.objects.filter(provider=OuterRef("pk")).order_by("-at")
    failed_checks = checks.filter(ok=False)
    failed_polls = PollRun.objects.filter(
        provider=OuterRef("pk"), outcome__in=PollRun.FAILURES
    ).order_by("-started_at")
    finished_polls = PollRun.objects.filter(
        provider=OuterRef("pk"), outcome__in=[*PollRun.SUCCEEDED, *PollRun.FAILURES]
    ).order_by("-started_at")
    # The credential too: a key finding is checked against the key in effect (its fingerprint).
    return providers.select_related("credential").annotate(
        last_poll_outcome=Subquery(finished_polls.values("outcome")[:1]),
        last_check_at=Subquery(checks.values("at")[:1]),
        last_check_class=Subquery(checks.values("status_class")[:1]),
        check_error=Subquery(failed_checks.values("error")[:1]),
        check_error_at=Subquery(failed_checks.values("at")[:1]),
        poll_error=Subquery(failed_polls.values("error_message")[:1]),
        poll_error_at=Subquery(failed_polls.values("started_at")[:1]),
    )


@dataclass
class Bar:
    """One hour of health checks in the 24-hour chart, placed for the inline SVG."""

    hour: datetime
    ok: int
    failed: int
    x: int = 0
    ok_y: float = 0
    ok_h: float = 0
    failed_y: float = 0
    failed_h: float = 0
    tick: str = ""  # the time-axis label under this bar, if any

    @property
    def title(self) -> str:
        """What hovering the hour says: "05:00–06:00 UTC: 58 ok, 2 failed"."""
        end = self.hour + timedelta(hours=1)
        counts = f"{self.ok} ok, {self.failed} failed" if self.ok or self.failed else "no checks"
        return f"{self.hour:%H:%M}–{end:%H:%M} UTC: {counts}"


@dataclass
class Report:
    provider: Provider
    breaker: dict[str, Any]
    limiter: dict[str, Any]
    cache: dict[str, Any]
    window: metrics.Window
    totals: dict[str, float]
    status: str = UNKNOWN
    reason: str = ""
    history: list[Bar] = field(default_factory=list)
    live: bool = True  # False: the shared store was unreachable; no breaker or metrics

    @property
    def slug(self) -> str:
        return self.provider.slug

    @property
    def total_errors(self) -> dict[str, int]:
        return metrics.errors_by_class(self.totals)

    @property
    def last_error(self) -> tuple[datetime, str] | None:
        """The newest failed health check or poll, as (when, scrubbed message)."""
        p, found = self.provider, []
        if getattr(p, "check_error_at", None):
            found.append((p.check_error_at, f"health check: {p.check_error}"))
        if getattr(p, "poll_error_at", None):
            found.append((p.poll_error_at, f"poll: {p.poll_error}"))
        return max(found) if found else None

    @property
    def rate_note(self) -> str:
        """Why the badge can stay UNAVAILABLE or DEGRADED with the breaker closed (say, just
        after "Reset breaker"): the success rate of the metrics window, which a reset keeps."""
        rate = self.window.success_rate
        held = self.status in (UNAVAILABLE, DEGRADED) and rate is not None and rate < 0.9
        if not held or self.breaker["state"] != breaker.CLOSED:
            return ""
        minutes = settings.PROVIDER_METRICS_WINDOW // 60
        return f"breaker closed; status follows the success rate of the last {minutes} minutes"

    def summary(self) -> dict[str, Any]:
        """The provider guide's per-provider entry of GET …/health."""
        return {
            "status": self.status,
            "success_rate": _rate(self.window.success_rate),
            "avg_response_time": self.window.avg_ms,
            "circuit_breaker": self.breaker["state"],
            "rate_limit_utilization": self.limiter["utilization"],
        }

    def window_metrics(self) -> dict[str, Any]:
        return {
            "window_seconds": settings.PROVIDER_METRICS_WINDOW,
            "calls": self.window.calls,
            "successes": self.window.ok,
            "success_rate": _rate(self.window.success_rate),
            "avg_response_time": self.window.avg_ms,
            "p95_response_time": self.window.p95_ms,
            "errors": self.window.errors,
            "total_calls": int(self.totals.get("calls", 0)),
            "total_errors": self.total_errors,
        }

    def detail(self) -> dict[str, Any]:
        last_error = self.last_error
        checked = getattr(self.provider, "last_check_at", None)
        return {
            "provider": self.slug,
            "name": self.provider.name,
            "enabled": self.provider.is_enabled,
            "status": self.status,
            "reason": self.reason,
            **self.window_metrics(),
            "circuit_breaker": self.breaker,
            "rate_limiter": self.limiter,
            "cache": self.cache,
            "last_success_at": _iso(self.provider.last_success_at),
            "last_health_check_at": _iso(checked),
            "last_health_check": getattr(self.provider, "last_check_class", None),
            "last_error": {"at": _iso(last_error[0]), "message": last_error[1]}
            if last_error
            else None,
        }


def _rate(rate: float | None) -> float | None:
    return round(rate, 3) if rate is not None else None


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def status_of(report: Report) -> tuple[str, str]:
    minutes = settings.PROVIDER_METRICS_WINDOW // 60
    rate, state = report.window.success_rate, report.breaker["state"]
    # What the latest health check that could tell found wrong with the key in effect: the
    # same finding the broker skips the provider for (Provider.key_finding).
    key_problem = report.provider.key_finding
    if not report.provider.is_enabled:
        return UNKNOWN, "disabled"
    if not report.live:
        return UNKNOWN, "live stats unavailable: shared state (Redis) unreachable"
    if state == breaker.OPEN:
        return UNAVAILABLE, "circuit breaker open: calls are refused"
    if key_problem:
        return UNAVAILABLE, f"latest health check: {key_problem}"
    if rate is not None and rate < 0.5:
        return UNAVAILABLE, f"success rate {rate:.0%} (under 50%) over {minutes} min"
    if state == breaker.HALF_OPEN:
        return DEGRADED, "circuit breaker half-open: trial calls decide"
    if getattr(report.provider, "last_poll_outcome", None) == PollRun.Outcome.ABANDONED:
        return DEGRADED, "latest poll abandoned: its worker stopped mid-poll"
    if rate is None:
        never = "" if getattr(report.provider, "last_check_at", None) else "; never health-checked"
        return UNKNOWN, f"no calls in the last {minutes} min{never}"
    if rate < 0.9:
        return DEGRADED, f"success rate {rate:.0%} (under 90%) over {minutes} min"
    return HEALTHY, f"success rate {rate:.0%} over {minutes} min"


def reports(
    providers: list[Provider], *, history: bool = False, offline_ok: bool = False
) -> list[Report]:
    """Every provider's report from one read of the shared store (and one query for the
    24-hour history when asked). When the store is unreachable: with `offline_ok` (pages),
    reports from the database alone, marked not `live`; else the error goes up (JSON: 503)."""
    states = [k for p in providers for k in (breaker.key(p.slug), limiter.key(p.slug))]
    windows = {p.slug: metrics.window_keys(p.slug) for p in providers}
    counters = [metrics.stats_key(p.slug) for p in providers]
    counters += [k for keys in windows.values() for k in keys]
    live = True
    try:
        state_values, counter_values = store().read(states, counters)
    except UNREACHABLE:
        if not offline_ok:
            raise
        live = False
        state_values = {k: {} for k in states}
        counter_values = {k: {} for k in counters}
    bars = hourly_checks(providers) if history else {}
    result = []
    for p in providers:
        totals = counter_values[metrics.stats_key(p.slug)]
        window = metrics.Window.of([counter_values[k] for k in windows[p.slug]])
        report = Report(
            provider=p,
            breaker=breaker.describe(state_values[breaker.key(p.slug)], totals),
            limiter=limiter.describe(state_values[limiter.key(p.slug)], p.policy(), totals),
            cache=cache.describe(p.slug, totals, window.success_rate),
            window=window,
            totals=totals,
            history=bars.get(p.pk, []),
            live=live,
        )
        report.status, report.reason = status_of(report)
        result.append(report)
    return result


def report(provider: Provider, *, history: bool = False, offline_ok: bool = False) -> Report:
    return reports([provider], history=history, offline_ok=offline_ok)[0]


def summary(all_reports: list[Report]) -> dict[str, int]:
    statuses = [r.status for r in all_reports]
    return {
        "total_providers": len(statuses),
        "healthy": statuses.count(HEALTHY),
        "degraded": statuses.count(DEGRADED),
        "unavailable": statuses.count(UNAVAILABLE),
        "unknown": statuses.count(UNKNOWN),
    }


def overall(all_reports: list[Report]) -> str:
    """healthy: every enabled provider is; unavailable: none healthy or degraded, at least one
    unavailable; unknown: nothing known; else degraded."""
    statuses = {r.status for r in all_reports if r.provider.is_enabled}
    if statuses == {HEALTHY}:
        return "healthy"
    if not statuses or statuses == {UNKNOWN}:
        return "unknown"
    if statuses <= {UNAVAILABLE, UNKNOWN}:
        return "unavailable"
    return "degraded"


HISTORY_HOURS, BAR_WIDTH, BAR_GAP = 24, 10, 2
# The chart's rows, in SVG units: a marker strip for hours with failures, the bars, the axis.
MARK_HEIGHT, BARS_TOP, BARS_HEIGHT, AXIS_Y = 3, 6, 40, 57
TICK_EVERY = 6  # hours between time-axis labels


def hourly_checks(providers: list[Provider], now: datetime | None = None) -> dict[int, list[Bar]]:
    """Per provider, 24 hourly bars of ok and failed health checks (oldest first), placed
    for the inline SVG: failures stacked on top of successes, scaled to the busiest hour."""
    now = (now or timezone.now()).replace(minute=0, second=0, microsecond=0)
    hours = [now - timedelta(hours=h) for h in range(HISTORY_HOURS - 1, -1, -1)]
    rows = (
        HealthCheck.objects.since(hours[0])
        .filter(provider__in=providers)
        .annotate(hour=TruncHour("at"))
        .values("provider_id", "hour")
        .annotate(passed=Count("pk", filter=Q(ok=True)), failed=Count("pk", filter=Q(ok=False)))
    )
    counts = {(r["provider_id"], r["hour"]): (r["passed"], r["failed"]) for r in rows}
    return {
        p.pk: _place([Bar(h, *counts.get((p.pk, h), (0, 0))) for h in hours]) for p in providers
    }


def _place(bars: list[Bar]) -> list[Bar]:
    length = scale([b.ok + b.failed for b in bars], BARS_HEIGHT)  # the busiest hour fills it
    bottom = BARS_TOP + BARS_HEIGHT
    for i, bar in enumerate(bars):
        bar.x = i * (BAR_WIDTH + BAR_GAP)
        bar.ok_h = length(bar.ok)
        # One failure among sixty checks still shows: at least a 2-unit sliver.
        bar.failed_h = max(length(bar.failed), 2) if bar.failed else 0
        bar.ok_y = round(bottom - bar.ok_h, 1)
        bar.failed_y = round(bar.ok_y - bar.failed_h, 1)
        near_now = i >= len(bars) - 3  # the axis says "now" there
        bar.tick = f"{bar.hour:%H}:00" if bar.hour.hour % TICK_EVERY == 0 and not near_now else ""
    return bars

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from health import status
from health.models import HealthCheck
from resilience import breaker, metrics
from resilience.errors import KEY_PROBLEMS

pytestmark = pytest.mark.django_db


def report(provider, state="CLOSED", calls=0, ok=0, last_check=None) -> status.Report:
    """The status of `provider` with this breaker state and window, its latest health check
    having ended `last_check` (what a check records on the provider: Provider.note_key_check)."""
    provider.last_check_class = last_check
    provider.key_problem = last_check if last_check in KEY_PROBLEMS else ""
    provider.key_problem_fingerprint = provider.key_fingerprint
    r = status.Report(
        provider=provider,
        breaker=breaker.describe({"state": state}, {}),
        limiter={},
        cache={},
        window=metrics.Window(calls, ok, None, None),
        totals={},
    )
    r.status, r.reason = status.status_of(r)
    return r


@pytest.mark.parametrize(
    ("state", "calls", "ok", "last_check", "expected"),
    [
        ("CLOSED", 10, 10, "ok", "HEALTHY"),
        ("CLOSED", 10, 9, None, "HEALTHY"),
        ("CLOSED", 10, 8, None, "DEGRADED"),
        ("HALF_OPEN", 10, 10, None, "DEGRADED"),
        ("HALF_OPEN", 0, 0, None, "DEGRADED"),
        ("CLOSED", 10, 5, None, "DEGRADED"),
        ("CLOSED", 10, 4, None, "UNAVAILABLE"),
        ("OPEN", 0, 0, None, "UNAVAILABLE"),
        ("CLOSED", 10, 10, "invalid_key", "UNAVAILABLE"),
        ("CLOSED", 0, 0, "missing_key", "UNAVAILABLE"),
        ("CLOSED", 0, 0, None, "UNKNOWN"),
    ],
)
def test_the_status_rule(registry, state, calls, ok, last_check, expected):
    assert report(registry["groq"], state, calls, ok, last_check).status == expected


def test_a_key_found_rejected_is_not_held_against_the_key_put_in_since(registry, settings):
    settings.GROQ_API_KEY = "gsk_rejected00000000000000001"
    rejected = report(registry["groq"], calls=10, ok=10, last_check="invalid_key")
    assert (rejected.status, rejected.reason) == (
        "UNAVAILABLE",
        "latest health check: the API key was rejected (401)",
    )
    settings.GROQ_API_KEY = "gsk_replacement0000000000002"
    assert status.status_of(rejected)[0] == "HEALTHY"


def test_a_disabled_provider_is_unknown_and_says_why(registry, settings):
    settings.GROQ_ENABLED = False
    disabled = report(registry["groq"], calls=5, ok=5)
    assert (disabled.status, disabled.reason) == ("UNKNOWN", "disabled")


def test_overall_status(registry):
    groq, deepinfra = registry["groq"], registry["deepinfra"]
    healthy, down = report(groq, calls=1, ok=1), report(deepinfra, "OPEN")
    assert status.overall([healthy]) == "healthy"
    assert status.overall([healthy, down]) == "degraded"
    assert status.overall([down, report(groq)]) == "unavailable"
    assert status.overall([report(groq)]) == "unknown"


def test_p95_is_read_from_the_histogram_like_prometheus():
    counters = {"le:0.05": 50, "le:0.1": 50}
    assert metrics.quantile(0.95, counters) == pytest.approx(0.095)
    assert metrics.quantile(0.95, {"le:+Inf": 3}) == 60.0
    assert metrics.quantile(0.95, {}) is None


def test_the_window_sums_the_minutes_it_covers():
    minutes = [
        {"calls": 2, "ok": 2, "lat_sum": 0.2, "le:0.1": 2, "class:ok": 2},
        {"calls": 2, "ok": 1, "lat_sum": 0.6, "le:0.5": 2, "class:ok": 1, "class:timeout": 1},
    ]
    window = metrics.Window.of(minutes)
    assert (window.calls, window.ok, window.success_rate, window.avg_ms) == (4, 3, 0.75, 200.0)
    assert window.errors == {"timeout": 1}


def test_the_24_hour_chart_marks_every_failure_and_labels_time(registry):
    groq = registry["groq"]
    now = timezone.now().replace(hour=14, minute=30)
    hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)  # 12:00
    checks = [HealthCheck(provider=groq, ok=True, status_class="ok", at=hour) for _ in range(59)]
    checks.append(HealthCheck(provider=groq, ok=False, status_class="timeout", at=hour))
    HealthCheck.objects.bulk_create(checks)
    bars = status.hourly_checks([groq], now=now)[groq.pk]
    busy = bars[-3]
    assert busy.title == "12:00–13:00 UTC: 59 ok, 1 failed"
    assert busy.failed_h >= 2  # one failure in sixty still shows
    assert bars[0].title.endswith("UTC: no checks")
    assert [b.tick for b in bars if b.tick] == ["18:00", "00:00", "06:00"]  # 12:00 is by "now"

"""Health polling: each enabled provider's cheapest real call, every minute, stored.

A check always asks the provider (no cache) and makes one attempt (no retries), so it
measures the provider rather than our retry policy; it still goes through the shared
breaker and limiter, and its outcome lands in the metrics like any other call.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from health.models import HealthCheck
from providers.models import PollRun, Provider
from resilience.errors import ProviderError, outcome_of
from resilience.policy import call_policy
from resilience.secrets import scrub
from resilience.store import purge_expired

logger = logging.getLogger(__name__)

CHECK_EVERY_SECONDS = 60
KEEP_CHECKS = timedelta(days=7)


def run_check(provider: Provider) -> HealthCheck:
    adapter = provider.adapter()
    error: BaseException | None = None
    started = time.monotonic()
    try:
        with call_policy(fresh=True, max_retries=0):
            adapter.health_check()
    except ProviderError as exc:
        error = exc
    except Exception as exc:  # a bug must still leave a row saying the check failed
        logger.exception("%s: health check crashed", provider.slug)
        error = exc
    finally:
        adapter.close()
    provider.note_key_check(error)  # a key found missing or rejected: the broker skips it
    return HealthCheck.objects.create(
        provider=provider,
        ok=error is None,
        status_class=outcome_of(error),
        # A failure's HTTP status, or the status of the answer that proved the provider up.
        status_code=getattr(error, "status", None) if error else adapter.client.last_status,
        latency_ms=round(1000 * (time.monotonic() - started), 1),
        error=scrub(f"{type(error).__name__}: {error}")[:2000] if error else "",
    )


def check(slug: str) -> HealthCheck | None:
    provider = Provider.objects.filter(slug=slug).first()
    if provider is None or not provider.is_enabled:
        return None
    return run_check(provider)


def enabled_slugs() -> list[str]:
    return list(Provider.objects.enabled().values_list("slug", flat=True))


def housekeeping() -> None:
    """Drop health checks older than a week and expired shared-state rows; mark polls still
    `running` past the poll lock as abandoned (their worker died)."""
    HealthCheck.objects.filter(at__lt=timezone.now() - KEEP_CHECKS).delete()
    PollRun.objects.stale().abandon()
    purge_expired()


def sync_schedule(using: str = "default") -> PeriodicTask:
    """Seed the beat entry for health checks once; admin edits to it survive reloads."""
    every, _ = IntervalSchedule.objects.using(using).get_or_create(
        every=CHECK_EVERY_SECONDS, period=IntervalSchedule.SECONDS
    )
    task, _ = PeriodicTask.objects.using(using).get_or_create(
        name="provider health checks",
        defaults={
            "task": "health.tasks.check_providers",
            "interval": every,
            "expire_seconds": CHECK_EVERY_SECONDS - 5,
        },
    )
    return task

from __future__ import annotations

from celery import shared_task
from celery.result import AsyncResult
from kombu.exceptions import OperationalError

from health import checks
from resilience.store import UNREACHABLE

# What queueing a task raises when the broker (Redis, or the filesystem queue) cannot take it.
QUEUE_ERRORS = (OperationalError, *UNREACHABLE, ConnectionError, OSError)


@shared_task(ignore_result=True)
def check_providers() -> None:
    """Fan out one check per enabled provider, so one slow provider delays no other."""
    for slug in checks.enabled_slugs():
        check_provider.apply_async((slug,), expires=checks.CHECK_EVERY_SECONDS - 5)
    checks.housekeeping()


@shared_task(ignore_result=True)
def check_provider(slug: str) -> None:
    checks.check(slug)


def queue_check(slug: str) -> AsyncResult:
    """A check of one provider now, by a worker (the API's and the dashboard's button); it
    expires unrun after a minute. Raises the queue's own error when it cannot be queued."""
    return check_provider.apply_async((slug,), expires=checks.CHECK_EVERY_SECONDS)

from __future__ import annotations

from celery import shared_task

from health import checks


@shared_task(ignore_result=True)
def check_providers() -> None:
    """Fan out one check per enabled provider, so one slow provider delays no other."""
    for slug in checks.enabled_slugs():
        check_provider.apply_async((slug,), expires=checks.CHECK_EVERY_SECONDS - 5)
    checks.housekeeping()


@shared_task(ignore_result=True)
def check_provider(slug: str) -> None:
    checks.check(slug)

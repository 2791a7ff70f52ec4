from __future__ import annotations

from celery import shared_task

from providers import pipeline


@shared_task(ignore_result=True)
def poll_provider(slug: str) -> None:
    pipeline.poll_provider(slug)

from __future__ import annotations

import logging
import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gpubroker.settings")

app = Celery("gpubroker")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger("gpubroker.worker")


@worker_ready.connect
def start_providers(**kwargs) -> None:
    """Log the enabled providers and queue a poll for any whose data is stale, so a fresh
    install shows prices without waiting a whole interval for beat."""
    from providers.models import Provider
    from providers.tasks import poll_provider

    providers = Provider.objects.enabled()
    logger.info("Initialized %d providers", len(providers))
    for provider in providers:
        if provider.is_stale():
            poll_provider.apply_async([provider.slug], expires=provider.poll_interval)

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
def log_enabled_providers(**kwargs) -> None:
    from providers.models import Provider

    count = len(Provider.objects.enabled())
    logger.info("Initialized %d providers", count)

from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class HealthConfig(AppConfig):
    name = "health"

    def ready(self) -> None:
        post_migrate.connect(seed_schedule, sender=self)


def seed_schedule(**kwargs) -> None:
    """After every migrate (and every flush), make sure the health-check beat entry exists,
    as django.contrib.auth does for permissions: created once, admin edits kept."""
    from health.checks import sync_schedule  # models are ready only once migrate has run

    sync_schedule(using=kwargs.get("using", "default"))

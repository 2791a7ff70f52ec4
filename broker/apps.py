from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class BrokerConfig(AppConfig):
    name = "broker"
    verbose_name = "Broker"

    def ready(self) -> None:
        post_migrate.connect(seed_schedule, sender=self)


def seed_schedule(using: str = "default", **kwargs) -> None:
    """After every migrate, make sure the beat entry that rolls usage up into observed
    latency and throughput exists (created once; admin edits kept), as health's checks do."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from broker.usage import ROLL_UP_SECONDS

    every, _ = IntervalSchedule.objects.using(using).get_or_create(
        every=ROLL_UP_SECONDS, period=IntervalSchedule.SECONDS
    )
    PeriodicTask.objects.using(using).get_or_create(
        name="broker: observed latency and throughput",
        defaults={
            "task": "broker.tasks.roll_up_observations",
            "interval": every,
            "expire_seconds": ROLL_UP_SECONDS - 5,
        },
    )

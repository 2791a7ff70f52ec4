from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import Q
from django.utils import timezone


class SharedStateQuerySet(models.QuerySet):
    def live(self, now: datetime | None = None) -> SharedStateQuerySet:
        return self.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now or timezone.now()))


class SharedState(models.Model):
    """Resilience state shared by web, worker and beat when there is no Redis (resilience.store).

    One row per key (a breaker, a token bucket, a counter set); changed only inside a
    transaction holding the row's lock, so every process sees the same numbers.
    """

    key = models.CharField(max_length=200, primary_key=True)
    value = models.JSONField(default=dict)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    objects = SharedStateQuerySet.as_manager()

    def __str__(self) -> str:
        return self.key

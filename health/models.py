from __future__ import annotations

from datetime import datetime

from django.db import models
from django.utils import timezone

from providers.models import Provider


class HealthCheckQuerySet(models.QuerySet):
    def since(self, when: datetime) -> HealthCheckQuerySet:
        return self.filter(at__gte=when)


class HealthCheck(models.Model):
    """The outcome of one health check: a provider's cheapest real call, made every minute."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="health_checks")
    at = models.DateTimeField(default=timezone.now)
    ok = models.BooleanField()
    status_class = models.CharField(max_length=40, help_text="ok, timeout, invalid_key, …")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True, default="", help_text="Secrets scrubbed.")

    objects = HealthCheckQuerySet.as_manager()

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["provider", "-at"]), models.Index(fields=["at"])]

    def __str__(self) -> str:
        return f"{self.provider_id} {self.at:%Y-%m-%d %H:%M} {self.status_class}"

    def as_dict(self) -> dict:
        return {
            "provider": self.provider.slug,
            "at": self.at.isoformat(),
            "ok": self.ok,
            "status_class": self.status_class,
            "status_code": self.status_code,
            "latency_ms": self.latency_ms,
            "error": self.error,
        }

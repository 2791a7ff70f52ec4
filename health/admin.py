from __future__ import annotations

from django.contrib import admin

from health.models import HealthCheck


@admin.register(HealthCheck)
class HealthCheckAdmin(admin.ModelAdmin):
    """Read-only: rows are written by the health checks, every minute."""

    list_display = ["provider", "at", "ok", "status_class", "status_code", "latency_ms"]
    list_filter = ["provider", "ok", "status_class"]
    date_hierarchy = "at"
    list_select_related = ["provider"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

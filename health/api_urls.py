from __future__ import annotations

from django.urls import path

from health import api

# <str:slug>: any text there is looked up, so an unknown slug is always a JSON 404.
app_name = "provider-health"
urlpatterns = [
    path("health", api.health, name="health"),
    path("providers/<str:slug>/health", api.provider_health, name="provider"),
    path("providers/<str:slug>/health-check", api.health_check, name="health-check"),
    path("circuit-breakers", api.circuit_breakers, name="circuit-breakers"),
    path("circuit-breakers/<str:slug>/reset", api.reset_breaker, name="reset-breaker"),
    path("rate-limiters", api.rate_limiters, name="rate-limiters"),
    path("cache/stats", api.cache_stats, name="cache-stats"),
    path("cache/invalidate", api.cache_invalidate, name="cache-invalidate"),
    path("metrics/summary", api.metrics_summary, name="metrics-summary"),
]

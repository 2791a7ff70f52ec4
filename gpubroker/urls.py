from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from health import api as health_api
from health import views as health_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/providers/sync", health_api.sync, name="sync"),
    path("health/", include("health.urls")),
    path("api/v1/provider-health/", include("health.api_urls")),
    path("metrics", health_views.metrics, name="metrics"),
    path("healthz", health_views.healthz, name="healthz"),
    path("readyz", health_views.readyz, name="readyz"),
    path("", include("marketplace.urls")),
]

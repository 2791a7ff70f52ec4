from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from health import api as health_api
from health import views as health_views
from marketplace.api import api as catalog_api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/providers/sync", health_api.sync, name="sync"),
    path("health/", include("health.urls")),
    path("api/v1/provider-health/", include("health.api_urls")),
    path("api/v1/", catalog_api.urls),
    path("metrics", health_views.metrics, name="metrics"),
    path("healthz", health_views.healthz, name="healthz"),
    path("readyz", health_views.readyz, name="readyz"),
    path("", include("marketplace.urls")),
]

from __future__ import annotations

from contextlib import suppress

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from broker.prometheus import BrokerCollector
from health import api as health_api
from health import prometheus
from health import views as health_views
from marketplace.api import api as catalog_api

# /metrics (health) exports the broker's counters too; the apps do not know each other.
with suppress(ValueError):  # already registered (the URLconf imported again)
    prometheus.registry.register(BrokerCollector())

urlpatterns = [
    # Browsers (and the admin's pages, which do not use base.html) ask for /favicon.ico.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("", include("broker.urls")),
    path("api/v1/providers/sync", health_api.sync, name="sync"),
    path("health/", include("health.urls")),
    path("status/", health_views.public_index, name="status"),
    path("status/<slug:slug>/", health_views.public_detail, name="status-detail"),
    path("api/v1/provider-health/", include("health.api_urls")),
    path("api/v1/", catalog_api.urls),
    path("metrics", health_views.metrics, name="metrics"),
    path("healthz", health_views.healthz, name="healthz"),
    path("readyz", health_views.readyz, name="readyz"),
    path("", include("marketplace.urls")),
]

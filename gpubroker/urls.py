from __future__ import annotations

import sys
from contextlib import suppress

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.templatetags.static import static
from django.urls import include, path
from django.views import defaults
from django.views.generic import RedirectView

from broker.prometheus import BrokerCollector
from broker.proxy import error_response
from gpubroker.json_errors import OPENAI_PATHS, is_json_path, json_error
from health import api as health_api
from health import prometheus
from health import views as health_views
from marketplace.api import api as catalog_api

# /metrics (health) exports the broker's counters too; the apps do not know each other.
with suppress(ValueError):  # already registered (the URLconf imported again)
    prometheus.registry.register(BrokerCollector())

urlpatterns = [
    # First: the pages asked most (its paths, "", marketplace/, offers/, models/, gpus/, are
    # no other app's prefix), so the resolver tries one include, not all of them, for each.
    path("", include("marketplace.urls")),
    # Browsers (and the admin's pages, which do not use base.html) ask for /favicon.ico.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("", include("broker.urls")),
    path("api/v1/providers/sync", health_api.sync, name="sync"),
    path("api/v1/providers/sync/runs/<int:pk>", health_api.sync_run, name="sync-run"),
    path("health/", include("health.urls")),
    path("status/", health_views.public_index, name="status"),
    path("status/<slug:slug>/", health_views.public_detail, name="status-detail"),
    path("api/v1/provider-health/", include("health.api_urls")),
    path("api/v1/", catalog_api.urls),
    path("metrics", health_views.metrics, name="metrics"),
    path("healthz", health_views.healthz, name="healthz"),
    path("readyz", health_views.readyz, name="readyz"),
]


def server_error(request: HttpRequest) -> HttpResponse:
    """A failure outside a view (a middleware, the URL resolver): JSON paths still get JSON."""
    return (
        json_error(sys.exc_info()[1])
        if is_json_path(request.path)
        else defaults.server_error(request)
    )


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith(OPENAI_PATHS):  # what an OpenAI SDK reads
        message = f"Unknown path: {request.method} {request.path}"
        return error_response(404, message, "unknown_url")
    if is_json_path(request.path):
        return JsonResponse({"error": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


handler500 = server_error
handler404 = not_found

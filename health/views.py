from __future__ import annotations

from celery import current_app
from django.contrib.admin.views.decorators import staff_member_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import trigger_client_event
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from health import checks, prometheus, status
from health.auth import staff_or_token_required
from providers.models import Provider
from resilience import breaker, cache

CARD = "health/index.html#provider-card"


def _providers():
    return status.annotated(Provider.objects.all())


@vary_on_headers("HX-Request")
@staff_member_required
def index(request: HttpRequest) -> TemplateResponse:
    """The dashboard; to HTMX, just its summary line (which refreshes itself like the cards)."""
    reports = status.reports(list(_providers()), history=not request.htmx)
    context = {
        "reports": reports,
        "summary": status.summary(reports),
        "overall": status.overall(reports),
    }
    template = "health/index.html#summary" if request.htmx else "health/index.html"
    return TemplateResponse(request, template, context)


@vary_on_headers("HX-Request")
@staff_member_required
def detail(request: HttpRequest, slug: str) -> TemplateResponse:
    """The provider's page; to HTMX, just its card (what the dashboard refreshes)."""
    provider = get_object_or_404(_providers(), slug=slug)
    report = status.report(provider, history=True)
    if request.htmx:
        return TemplateResponse(request, CARD, {"report": report})
    context = {
        "report": report,
        "poll_runs": provider.poll_runs.all()[:20],
        "checks": provider.health_checks.all()[:50],
    }
    return TemplateResponse(request, "health/detail.html", context)


def _card(request: HttpRequest, slug: str) -> HttpResponse:
    """Answer a button: the new card to HTMX, back to the dashboard without JavaScript."""
    if not request.htmx:
        return redirect("health:index")
    report = status.report(get_object_or_404(_providers(), slug=slug), history=True)
    response = TemplateResponse(request, CARD, {"report": report})
    return trigger_client_event(response, "health-changed")  # the summary line follows


@require_POST
@staff_member_required
def reset_breaker(request: HttpRequest, slug: str) -> HttpResponse:
    provider = get_object_or_404(Provider, slug=slug)
    breaker.reset(provider.slug)
    return _card(request, slug)


@require_POST
@staff_member_required
def check_now(request: HttpRequest, slug: str) -> HttpResponse:
    checks.run_check(get_object_or_404(Provider, slug=slug))
    return _card(request, slug)


@require_POST
@staff_member_required
def invalidate_cache(request: HttpRequest, slug: str) -> HttpResponse:
    cache.invalidate([get_object_or_404(Provider, slug=slug).slug])
    return _card(request, slug)


@require_GET
@staff_or_token_required
def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(prometheus.registry), content_type=CONTENT_TYPE_LATEST)


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers."""
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database and the Celery broker answer."""
    found = {"database": _database(), "broker": _broker()}
    ready = all(v == "ok" for v in found.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": found}, status=200 if ready else 503
    )


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any failure means not ready; say which kind, not the DSN
        return f"error: {type(exc).__name__}"
    return "ok"


def _broker() -> str:
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"

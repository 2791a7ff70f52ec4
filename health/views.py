from __future__ import annotations

from celery import current_app
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
from health.auth import staff_or_token_required, staff_page
from providers.models import Provider
from resilience import breaker, cache

CARD = "health/index.html#provider-card"


def _providers():
    return status.annotated(Provider.objects.all())


def _is_staff(request: HttpRequest) -> bool:
    return request.user.is_active and request.user.is_staff


def _page(request: HttpRequest, title: str) -> TemplateResponse:
    """The dashboard or the public status page; to HTMX, just the summary line (which
    refreshes itself like the cards)."""
    reports = status.reports(list(_providers()), history=not request.htmx)
    context = {
        "title": title,
        "ops": _is_staff(request),
        "reports": reports,
        "summary": status.summary(reports),
        "overall": status.overall(reports),
    }
    template = "health/index.html#summary" if request.htmx else "health/index.html"
    return TemplateResponse(request, template, context)


def _detail(request: HttpRequest, slug: str) -> TemplateResponse:
    """A provider's page; to HTMX, just its card (what the dashboard refreshes)."""
    provider = get_object_or_404(_providers(), slug=slug)
    report = status.report(provider, history=True)
    context = {"report": report, "ops": _is_staff(request)}
    if request.htmx:
        return TemplateResponse(request, CARD, context)
    context["poll_runs"] = provider.poll_runs.all()[:20]
    context["checks"] = provider.health_checks.all()[:50]
    return TemplateResponse(request, "health/detail.html", context)


@vary_on_headers("HX-Request")
@staff_page
def index(request: HttpRequest) -> TemplateResponse:
    return _page(request, "Provider health")


@vary_on_headers("HX-Request")
@staff_page
def detail(request: HttpRequest, slug: str) -> TemplateResponse:
    return _detail(request, slug)


@vary_on_headers("HX-Request")
def public_index(request: HttpRequest) -> TemplateResponse:
    """/status/: what anyone may know; error details and buttons only for staff."""
    return _page(request, "Provider status")


@vary_on_headers("HX-Request")
def public_detail(request: HttpRequest, slug: str) -> TemplateResponse:
    return _detail(request, slug)


def _card(request: HttpRequest, slug: str) -> HttpResponse:
    """Answer a button: the new card to HTMX, back to the dashboard without JavaScript."""
    if not request.htmx:
        return redirect("health:index")
    report = status.report(get_object_or_404(_providers(), slug=slug), history=True)
    response = TemplateResponse(request, CARD, {"report": report, "ops": True})
    return trigger_client_event(response, "health-changed")  # the summary line follows


@require_POST
@staff_page
def reset_breaker(request: HttpRequest, slug: str) -> HttpResponse:
    provider = get_object_or_404(Provider, slug=slug)
    breaker.reset(provider.slug)
    return _card(request, slug)


@require_POST
@staff_page
def check_now(request: HttpRequest, slug: str) -> HttpResponse:
    checks.run_check(get_object_or_404(Provider, slug=slug))
    return _card(request, slug)


@require_POST
@staff_page
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

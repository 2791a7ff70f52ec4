from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from celery import current_app
from django.conf import settings
from django.db import connection, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import trigger_client_event
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from health import checks, prometheus, status
from health.auth import staff_or_token_required, staff_page
from health.models import HealthCheck
from health.tasks import QUEUE_ERRORS, queue_check
from providers.adapters.base import price_sheets
from providers.models import Offer, Provider
from resilience import breaker, cache
from resilience.store import store

CARD = "health/index.html#provider-card"


def _providers():
    return status.annotated(Provider.objects.all())


def _is_staff(request: HttpRequest) -> bool:
    return request.user.is_active and request.user.is_staff


def _page(request: HttpRequest, title: str) -> TemplateResponse:
    """The dashboard or the public status page; to HTMX, just the summary line (which
    refreshes itself like the cards)."""
    reports = status.reports(list(_providers()), history=not request.htmx, offline_ok=True)
    context = {
        "title": title,
        "ops": _is_staff(request),
        "reports": reports,
        "live_stats_unavailable": not all(r.live for r in reports),
        "summary": status.summary(reports),
        "overall": status.overall(reports),
    }
    if request.htmx:
        return TemplateResponse(request, "health/index.html#summary", context)
    context |= _data_quality()
    return TemplateResponse(request, "health/index.html", context)


def _data_quality() -> dict:
    """What the dashboard lists below the cards: GPU spellings the catalog lacks, prices
    flagged unusual, and the price sheets with their age."""
    return {
        "unmatched_gpus": list(Offer.objects.unmatched_gpus()[:100]),
        "flagged_offers": list(Offer.objects.flagged().order_by("provider__name", "name")[:100]),
        "price_sheets": price_sheets(timezone.localdate(), settings.PRICE_SHEET_MAX_AGE_DAYS),
    }


def _detail(request: HttpRequest, slug: str) -> TemplateResponse:
    """A provider's page; to HTMX, just its card (what the dashboard refreshes). For staff,
    `?check=<time>` follows a health check queued then by the card's button."""
    provider = get_object_or_404(_providers(), slug=slug)
    report = status.report(provider, history=True, offline_ok=True)
    ops = _is_staff(request)
    asked = ops and AskedCheck.read(provider, request.GET.get("check"))
    context = {"report": report, "ops": ops, "asked": asked}
    if request.htmx:
        response = TemplateResponse(request, CARD, context)
        if asked and asked.check:  # the check is in: the summary line follows
            trigger_client_event(response, "health-changed")
        return response
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


def _card(request: HttpRequest, slug: str, asked: AskedCheck | None = None) -> HttpResponse:
    """Answer a button: the new card to HTMX, back to the dashboard without JavaScript (to
    the provider's page, which follows the check, after "Run health check")."""
    if not request.htmx:
        if asked and not asked.refused:
            return redirect(f"{reverse('health:detail', args=[slug])}?check={asked.token}")
        return redirect("health:index")
    report = status.report(
        get_object_or_404(_providers(), slug=slug), history=True, offline_ok=True
    )
    context = {"report": report, "ops": True, "asked": asked}
    response = TemplateResponse(request, CARD, context)
    return trigger_client_event(response, "health-changed")  # the summary line follows


@dataclass
class AskedCheck:
    """A health check queued by the card's button, followed by the card until it is in."""

    since: datetime
    check: HealthCheck | None = None
    refused: str = ""  # why nothing was queued

    LOST_AFTER = timedelta(seconds=checks.CHECK_EVERY_SECONDS + 30)  # it expires unrun

    @classmethod
    def read(cls, provider: Provider, token: str | None) -> AskedCheck | None:
        """From the card's `?check=` (a Unix time); anything else is no check asked."""
        try:
            since = datetime.fromtimestamp(float(token or ""), tz=UTC)
        except (ValueError, OverflowError, OSError):
            return None
        check = provider.health_checks.filter(at__gte=since).order_by("at").first()
        return cls(since, check)

    @property
    def token(self) -> str:
        return f"{self.since.timestamp():.6f}"

    @property
    def pending(self) -> bool:
        return not (self.check or self.refused or self.lost)

    @property
    def lost(self) -> bool:
        return self.check is None and timezone.now() - self.since > self.LOST_AFTER


@require_POST
@staff_page
def reset_breaker(request: HttpRequest, slug: str) -> HttpResponse:
    provider = get_object_or_404(Provider, slug=slug)
    breaker.reset(provider.slug)
    return _card(request, slug)


@require_POST
@staff_page
def check_now(request: HttpRequest, slug: str) -> HttpResponse:
    """Queue the check for a worker (a provider call never runs inside a web request); the
    card says "queued" and follows it until the result is in."""
    provider = get_object_or_404(Provider, slug=slug)
    asked = AskedCheck(timezone.now())
    if not provider.is_enabled:
        asked.refused = "the provider is disabled: no health check was queued"
    else:
        try:
            queue_check(provider.slug)
        except QUEUE_ERRORS as exc:
            asked.refused = f"the task queue did not answer ({type(exc).__name__}): not checked"
    return _card(request, slug, asked)


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


READY_WITHIN = 1.5  # seconds for all of /readyz's checks together (probes give up at 2)


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database, the Celery broker and the shared state answer, each checked
    at once beside the others; one that does not answer in time is reported as "timeout"."""
    checks = {"database": _database, "broker": _broker, "shared_state": _shared_state}
    pool = ThreadPoolExecutor(max_workers=len(checks))
    futures = {name: pool.submit(_closing(check)) for name, check in checks.items()}
    wait(futures.values(), timeout=READY_WITHIN)
    pool.shutdown(wait=False)  # a hung check ends on its own socket timeout
    found = {name: f.result() if f.done() else "error: timeout" for name, f in futures.items()}
    ready = all(v == "ok" for v in found.values())
    body = {"status": "ok" if ready else "unavailable", "checks": found}
    return JsonResponse(body, status=200 if ready else 503)


def _closing(check):
    """Run `check` in a pool thread, closing the database connection that thread opened."""

    def run() -> str:
        try:
            return check()
        finally:
            connections.close_all()

    return run


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
            conn.ensure_connection(max_retries=1, timeout=READY_WITHIN)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


def _shared_state() -> str:
    try:
        store().read([], [breaker.key("readyz")])
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"

"""The provider-health JSON API (shapes from the provider guide; see the README)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from health import checks, status
from health.auth import staff_or_token_required
from providers.models import PollRun, Provider
from providers.pipeline import poll_many
from resilience import breaker, cache


def _reports() -> list[status.Report]:
    return status.reports(list(status.annotated(Provider.objects.all())))


def _provider(slug: str) -> Provider | None:
    return status.annotated(Provider.objects.by_slug(slug)).first()


def _unknown(slug: str) -> JsonResponse:
    return JsonResponse({"error": f"Unknown provider {slug!r}."}, status=404)


@require_GET
@staff_or_token_required
def health(request: HttpRequest) -> JsonResponse:
    reports = _reports()
    return JsonResponse(
        {
            "status": status.overall(reports),
            "providers": {r.slug: r.summary() for r in reports},
            "summary": status.summary(reports),
        }
    )


@require_GET
@staff_or_token_required
def provider_health(request: HttpRequest, slug: str) -> JsonResponse:
    provider = _provider(slug)
    if provider is None:
        return _unknown(slug)
    return JsonResponse(status.report(provider).detail())


@require_POST
@staff_or_token_required
def health_check(request: HttpRequest, slug: str) -> JsonResponse:
    provider = _provider(slug)
    if provider is None:
        return _unknown(slug)
    check = checks.run_check(provider)
    fresh = _provider(slug)  # re-read: the check is now the latest
    return JsonResponse({"check": check.as_dict(), "health": status.report(fresh).detail()})


@require_GET
@staff_or_token_required
def circuit_breakers(request: HttpRequest) -> JsonResponse:
    return JsonResponse({r.slug: r.breaker for r in _reports()})


@require_POST
@staff_or_token_required
def reset_breaker(request: HttpRequest, slug: str) -> JsonResponse:
    provider = _provider(slug)
    if provider is None:
        return _unknown(slug)
    breaker.reset(slug)
    return JsonResponse({slug: status.report(provider).breaker})


@require_GET
@staff_or_token_required
def rate_limiters(request: HttpRequest) -> JsonResponse:
    return JsonResponse({r.slug: r.limiter for r in _reports()})


@require_GET
@staff_or_token_required
def cache_stats(request: HttpRequest) -> JsonResponse:
    per_provider = {r.slug: r.cache for r in _reports()}
    hits = sum(c["hits"] for c in per_provider.values())
    misses = sum(c["misses"] for c in per_provider.values())
    return JsonResponse(
        {
            "total_hits": hits,
            "total_misses": misses,
            "hit_ratio": round(hits / (hits + misses), 3) if hits + misses else None,
            "providers": per_provider,
        }
    )


@require_POST
@staff_or_token_required
def cache_invalidate(request: HttpRequest) -> JsonResponse:
    """?provider=<slug> forgets one provider's cached responses; without it, everyone's."""
    slug = request.GET.get("provider")
    if slug and not Provider.objects.by_slug(slug).exists():
        return _unknown(slug)
    slugs = [slug] if slug else list(Provider.objects.values_list("slug", flat=True))
    cache.invalidate(slugs)
    return JsonResponse({"invalidated": slugs})


@require_GET
@staff_or_token_required
def metrics_summary(request: HttpRequest) -> JsonResponse:
    reports = _reports()
    return JsonResponse(
        {
            "generated_at": timezone.now().isoformat(),
            "window_seconds": settings.PROVIDER_METRICS_WINDOW,
            "status": status.overall(reports),
            "summary": status.summary(reports),
            "providers": {r.slug: r.detail() for r in reports},
        }
    )


@require_http_methods(["GET", "POST"])
@staff_or_token_required
def sync(request: HttpRequest) -> JsonResponse:
    """Poll one provider (?provider=slug) or every enabled one, and say how each poll went."""
    slug = request.GET.get("provider") or None
    if slug and not Provider.objects.by_slug(slug).exists():
        return _unknown(slug)
    runs = poll_many(slug)
    return JsonResponse(
        {
            "providers": [run.as_dict() for run in runs],
            "ok": sum(run.succeeded for run in runs),
            "failed": sum(run.outcome == PollRun.Outcome.FAILED for run in runs),
        }
    )

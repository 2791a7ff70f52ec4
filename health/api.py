"""The provider-health JSON API (shapes from the provider guide; see the README)."""

from __future__ import annotations

import time

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from health import status
from health.auth import staff_or_token_required
from health.tasks import QUEUE_ERRORS, queue_check
from providers.models import PollRun, Provider
from providers.tasks import poll_provider
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
    """Queue a health check of the provider: 202 with the task id and where its result
    appears; `?wait=N` waits up to N seconds for it and answers 200 with the check."""
    provider = _provider(slug)
    if provider is None:
        return _unknown(slug)
    queued_at = timezone.now()
    try:
        task = queue_check(slug)
    except QUEUE_ERRORS as exc:
        body = {"error": f"Task queue unavailable ({type(exc).__name__}): nothing was checked."}
        return JsonResponse(body | {"retry": True, "dependency": "broker"}, status=503)
    newer = provider.health_checks.filter(at__gte=queued_at).order_by("-at")
    check = _wait_for(lambda: (not (found := newer.first()), found), _waiting(request))
    if check is None:
        url = reverse("provider-health:provider", args=[slug])
        body = {"queued": True, "task_id": task.id, "queued_at": queued_at.isoformat()}
        return JsonResponse(body | {"result_url": url}, status=202)
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


@require_POST
@staff_or_token_required
def sync(request: HttpRequest) -> JsonResponse:
    """Queue a poll of one provider (?provider=slug) or of every enabled one: 202 with the
    runs to follow at sync/runs/<id>; `?wait=N` (at most MAX_WAIT) waits for them that long,
    then answers 200 with how each went, or 202 if some still run. POST only: a GET could
    be triggered by a link on another site."""
    slug = request.GET.get("provider") or None
    if slug and not Provider.objects.by_slug(slug).exists():
        return _unknown(slug)
    providers = Provider.objects.by_slug(slug) if slug else Provider.objects.enabled()
    runs = [PollRun.objects.create(provider=p) for p in providers]
    try:
        for run in runs:
            queue_poll(run)
    except QUEUE_ERRORS as exc:
        return _not_queued(PollRun.objects.filter(pk__in=[r.pk for r in runs]), exc)
    runs = _wait_for(lambda: _unfinished(runs), _waiting(request))
    return _runs_answer(runs)


@require_GET
@staff_or_token_required
def sync_run(request: HttpRequest, pk: int) -> JsonResponse:
    """One queued poll: `outcome` is "running" until it ends; `?wait=N` as for sync."""
    run = PollRun.objects.select_related("provider").filter(pk=pk).first()
    if run is None:
        return JsonResponse({"error": f"Unknown poll run {pk}."}, status=404)
    (run,) = _wait_for(lambda: _unfinished([run]), _waiting(request))
    return JsonResponse(_run_json(run), status=202 if run.outcome == "running" else 200)


MAX_WAIT = 25  # seconds a request may hold its thread waiting (clients commonly give up at 30)


def queue_poll(run: PollRun) -> None:
    expires = max(run.provider.poll_interval, settings.PROVIDER_POLL_DEADLINE)
    poll_provider.apply_async((run.provider.slug, run.pk), expires=expires)


def _not_queued(runs, exc: Exception) -> JsonResponse:
    runs.update(
        outcome=PollRun.Outcome.FAILED,
        finished_at=timezone.now(),
        error_class="NotQueued",
        error_message=f"The task queue did not answer ({type(exc).__name__}).",
    )
    body = {"error": "Task queue unavailable: nothing was polled.", "retry": True}
    return JsonResponse(body | {"dependency": "broker"}, status=503)


def _waiting(request: HttpRequest) -> float:
    """?wait=N seconds, clamped to 0..MAX_WAIT (anything unreadable: 0)."""
    try:
        seconds = float(request.GET.get("wait", 0))
    except ValueError:
        return 0.0
    return min(max(seconds, 0.0), MAX_WAIT) if seconds == seconds else 0.0  # NaN → 0


def _wait_for(read, seconds: float):
    """Call `read()` until it returns (False, value) or `seconds` pass; return the value."""
    deadline = time.monotonic() + seconds
    while True:
        pending, value = read()
        if not pending or time.monotonic() >= deadline:
            return value
        time.sleep(0.2)


def _unfinished(runs: list[PollRun]) -> tuple[bool, list[PollRun]]:
    fresh = list(PollRun.objects.select_related("provider").filter(pk__in=[r.pk for r in runs]))
    return any(r.outcome == PollRun.Outcome.RUNNING for r in fresh), fresh


def _run_json(run: PollRun) -> dict:
    return run.as_dict() | {"url": reverse("sync-run", args=[run.pk])}


def _runs_answer(runs: list[PollRun]) -> JsonResponse:
    running = sum(run.outcome == PollRun.Outcome.RUNNING for run in runs)
    body = {
        "providers": [_run_json(run) for run in runs],
        "ok": sum(run.succeeded for run in runs),
        "failed": sum(run.outcome in PollRun.FAILURES for run in runs),
        "running": running,
    }
    return JsonResponse(body, status=202 if running else 200)

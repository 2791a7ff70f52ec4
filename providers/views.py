from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.http import require_http_methods

from gpubroker.api import staff_or_token_required
from providers.models import Provider
from providers.pipeline import poll_many


@require_http_methods(["GET", "POST"])
@staff_or_token_required
def sync(request):
    slug = request.GET.get("provider") or None
    if slug and not Provider.objects.by_slug(slug).exists():
        return JsonResponse({"error": f"Unknown provider {slug!r}."}, status=404)
    runs = poll_many(slug)
    return JsonResponse(
        {
            "providers": [run.as_dict() for run in runs],
            "ok": sum(run.outcome in ("ok", "partial") for run in runs),
            "failed": sum(run.outcome == "failed" for run in runs),
        }
    )

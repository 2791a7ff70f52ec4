"""What a broker key can see: the models it may call (`GET /v1/models`) and its own state."""

from __future__ import annotations

from typing import Any

from django.db.models import Min

from broker.models import ApiKey
from providers.models import Kind, Offer, Provider


def model_list(key: ApiKey) -> dict[str, Any]:
    """The models with an available offer on an enabled provider, in OpenAI's list shape;
    `providers` (an extension, as OpenRouter's) says who serves each."""
    enabled = [p.pk for p in Provider.objects.enabled() if key.allows_provider(p.slug)]
    rows = (
        Offer.objects.available()
        .filter(kind=Kind.LLM, provider_id__in=enabled)
        .values("canonical_id", "provider__slug")
        .annotate(first_seen=Min("first_seen"))
        .order_by("canonical_id", "provider__slug")
    )
    models: dict[str, dict[str, Any]] = {}
    for row in rows:
        canonical = row["canonical_id"]
        if not key.allows_model(canonical):
            continue
        entry = models.setdefault(
            canonical,
            {
                "id": canonical,
                "object": "model",
                "created": int(row["first_seen"].timestamp()),
                "owned_by": canonical.split("/")[0] if "/" in canonical else row["provider__slug"],
                "providers": [],
            },
        )
        entry["created"] = min(entry["created"], int(row["first_seen"].timestamp()))
        entry["providers"].append(row["provider__slug"])
    return {"object": "list", "data": list(models.values())}


def describe_key(key: ApiKey) -> dict[str, Any]:
    left = key.budget_left()
    return {
        "name": key.name,
        "prefix": key.prefix,
        "budget_usd": float(key.monthly_budget_usd) if key.monthly_budget_usd is not None else None,
        "budget_left_usd": float(left) if left is not None else None,
        "spent_this_month_usd": float(key.spent_this_month()),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "allowed_models": key.allowed_models,
        "allowed_providers": key.allowed_providers,
        "strategy": key.strategy,
    }

"""What a broker key can see: the models it may call (`GET /v1/models`) and its own state."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from broker.models import ApiKey
from providers import llm_models
from providers.models import Identity, Kind, Offer, Provider


def model_list(key: ApiKey) -> dict[str, Any]:
    """The catalog's canonical models (providers.LlmModel) with an available offer on an
    enabled provider, in OpenAI's list shape: `id` is the canonical id the requests may name.
    `name` (the author's casing) and `providers` (who serves it), as OpenRouter's, extend it."""
    return {"object": "list", "data": entries(key, Offer.objects.filter(llm_model__isnull=False))}


def model_entry(key: ApiKey, name: str) -> dict[str, Any] | None:
    """One model of the list, under any name the catalog resolves; None: none such for
    this key."""
    model = llm_models.resolve(name)
    found = entries(key, Offer.objects.filter(llm_model=model)) if model else []
    return found[0] if found else None


def entries(key: ApiKey, offers: QuerySet[Offer]) -> list[dict[str, Any]]:
    enabled = [p.pk for p in Provider.objects.enabled() if key.allows_provider(p.slug)]
    rows = (
        offers.available()
        .filter(kind=Kind.LLM, provider_id__in=enabled)
        .values(
            "llm_model__canonical",
            "llm_model__display_name",
            "llm_model__identity",
            "llm_model__first_seen",
            "provider__slug",
        )
        .distinct()
        .order_by("llm_model__canonical", "provider__slug")
    )
    models: dict[str, dict[str, Any]] = {}
    for row in rows:
        canonical = row["llm_model__canonical"]
        if not key.allows_model(canonical):
            continue
        entry = models.setdefault(
            canonical,
            {
                "id": canonical,
                "object": "model",
                "created": int(row["llm_model__first_seen"].timestamp()),
                "owned_by": owner(canonical, row["llm_model__identity"]),
                "name": row["llm_model__display_name"],
                "providers": [],
            },
        )
        entry["providers"].append(row["provider__slug"])
    return list(models.values())


def owner(canonical: str, identity: str) -> str:
    """The repo's namespace (`meta-llama`); for a provider's name no alias identifies
    (`groq:llama-3.1-8b-instant`), the provider."""
    if identity == Identity.UNKNOWN:
        return canonical.split(":", 1)[0]
    return canonical.split("/", 1)[0]


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

"""Loads providers/provider_registry.json into Provider rows, idempotently.

Code-owned fields (adapter, URLs, kind) follow the registry on every load; fields an admin
edits (enabled, poll interval, regions) are only set when the provider is first created, so
admin edits survive a reload.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from providers.gpus import load_gpu_catalog
from providers.llm_models import load_model_aliases
from providers.models import Provider


@transaction.atomic
def load_registry() -> list[Provider]:
    providers = []
    for slug, entry in settings.PROVIDER_REGISTRY.items():
        code_owned = {
            "name": entry["name"],
            "kind": entry["kind"],
            "adapter_path": entry["adapter"],
            "env_prefix": entry["env_prefix"],
            "base_url": entry["base_url"],
            "key_required": entry.get("key_required", False),
            "docs_url": entry.get("docs_url", ""),
        }
        provider, _ = Provider.objects.update_or_create(
            slug=slug,
            defaults=code_owned,
            create_defaults={
                **code_owned,
                "poll_interval": entry["poll_interval"],
                "regions": entry.get("regions", []),
            },
        )
        provider.sync_schedule()
        providers.append(provider)
    load_gpu_catalog()  # the vocabulary GPU adapters normalise names to
    load_model_aliases()  # provider names of models, identified (providers.llm_models)
    return providers

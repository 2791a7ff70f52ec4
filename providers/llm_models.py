"""Canonical model identity: which model each LLM offer serves, whoever sells it.

A model's canonical id is its lowercase Hugging Face repo id. Providers that list repo ids
(the registry's `"model_names": "hf-repo-ids"`: DeepInfra, the Hugging Face router) are matched
on the name case-folded. A provider's own name (Groq's `llama-3.3-70b-versatile`) is identified
only through an alias (`ModelAlias`, loaded from providers/model_aliases.json or added in the
admin), each citing the provider's page that says which weights the name serves. A name that
neither identifies stays visible as its own model, `<provider slug>:<name>`; it is counted on
the Catalog and logged once per poll, never guessed.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path

from django.db import connection, transaction
from django.utils import timezone

from providers.adapters.base import Catalog, OfferIn
from providers.models import Identity, Kind, LlmModel, ModelAlias, Offer, Provider

logger = logging.getLogger(__name__)

ALIASES_PATH = Path(__file__).resolve().parent / "model_aliases.json"
# Hugging Face repo ids: `namespace/name` of letters, digits, `-`, `_`, `.` (huggingface_hub
# validate_repo_id). Anything else a repo-id provider lists is not taken for one.
REPO_ID = re.compile(r"[\w.-]+/[\w.-]+", re.ASCII)
CHUNK = 5000


def resolve(name: str) -> LlmModel | None:
    """The model a name means, as the catalog knows it: its canonical id (any casing), an
    alias (a provider's own name such as Groq's `llama-3.3-70b-versatile`, any casing), or
    the exact id a provider lists an offer under (the Hugging Face router's
    `<repo>:<provider>`, a name no alias identifies yet). The one place a requested name
    becomes a model: the broker's routing and the model pages both ask here. None: unknown."""
    name = name.strip()
    if not name:
        return None
    model = LlmModel.objects.filter(canonical=name.lower()).first()
    if model is None:
        alias = ModelAlias.objects.filter(name__iexact=name).order_by("pk").first()
        if alias is not None:
            model = LlmModel.objects.filter(canonical=alias.model.lower()).first()
    if model is None:
        offer = (
            Offer.objects.filter(kind=Kind.LLM, upstream_id=name, llm_model__isnull=False)
            .select_related("llm_model")
            .order_by("pk")
            .first()
        )
        model = offer.llm_model if offer else None
    return model


@transaction.atomic
def load_model_aliases() -> list[ModelAlias]:
    """Write providers/model_aliases.json into ModelAlias, idempotently. Rows from the file
    follow it; rows an admin added are kept."""
    entries = json.loads(ALIASES_PATH.read_text())["aliases"]
    providers = Provider.objects.in_bulk([e["provider"] for e in entries], field_name="slug")
    aliases = []
    for entry in entries:
        provider = providers.get(entry["provider"])
        if provider is None:  # not in this deployment's registry: no offers to name
            continue
        alias, _ = ModelAlias.objects.update_or_create(
            provider=provider,
            name=entry["name"],
            defaults={
                "model": entry["model"],
                "source": entry["source"],
                "note": entry.get("note", ""),
                "from_file": True,
            },
        )
        aliases.append(alias)
    return aliases


def identify(provider: Provider, offers: Iterable[OfferIn], catalog: Catalog) -> None:
    """Point each offer at its LlmModel (creating models seen for the first time) and set its
    canonical id; names no alias identifies are counted on `catalog` and logged."""
    offers = list(offers)
    aliases = {a.name: a for a in ModelAlias.objects.filter(provider=provider)}
    # Identified once per name: a provider lists each model under many ids and regions.
    by_name = {name: _identity(provider, name, aliases) for name in {o.name for o in offers}}
    found = {}  # canonical → (display name, identity), in first-seen order
    unknown = []
    for offer in offers:
        canonical, display, identity = by_name[offer.name]
        found.setdefault(canonical, (display, identity))
        offer.canonical_id = canonical
        if identity == Identity.UNKNOWN:
            unknown.append(offer.name)
    catalog.unknown_models.update(unknown)  # one count per offer, counted in C
    ids = _model_ids(found, offers)
    for offer in offers:
        offer.llm_model_id = ids[offer.canonical_id]
    log_unknown_models(provider.slug, catalog)


def _identity(
    provider: Provider, name: str, aliases: dict[str, ModelAlias]
) -> tuple[str, str, str]:
    alias = aliases.get(name)
    if alias is not None:
        return alias.model.lower(), alias.model, Identity.ALIAS
    if provider.lists_repo_ids and REPO_ID.fullmatch(name):
        return name.lower(), name, Identity.REPO_ID
    return f"{provider.slug}:{name.lower()}", name, Identity.UNKNOWN


def _model_ids(found: dict[str, tuple[str, str]], offers: list[OfferIn]) -> dict[str, int]:
    """canonical → LlmModel id, creating the missing models (a concurrent poll creating the
    same one is ignored, then read back). Inserted in the canonical ids' order: two polls at
    once (the worker runs two) that insert the same new models in their catalogs' orders each
    wait on a row the other inserted first, a deadlock that fails one of them."""
    ids = _existing(list(found))
    missing = sorted(c for c in found if c not in ids)
    if missing:
        task, context = _summaries(offers)
        models = [
            LlmModel(
                canonical=canonical,
                display_name=found[canonical][0],
                identity=found[canonical][1],
                task=task.get(canonical, ""),
                context_length=context.get(canonical),
            )
            for canonical in missing
        ]
        if connection.vendor == "postgresql":
            ids |= _insert(models)
        else:
            LlmModel.objects.bulk_create(models, batch_size=CHUNK, ignore_conflicts=True)
        ids |= _existing([c for c in missing if c not in ids])
    return ids


def _insert(models: list[LlmModel]) -> dict[str, int]:
    """Insert models in one statement, a column an array (bulk_create spent ~0.2 ms a model
    preparing 40,000 of them at a first poll of the benchmark's catalogs); those a concurrent
    poll inserted first are skipped (ON CONFLICT DO NOTHING) and left for the caller to read."""
    columns = ["canonical", "display_name", "identity", "task", "context_length"]
    arrays = [[getattr(m, name) for m in models] for name in columns]
    table = LlmModel._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(columns)}, first_seen) "
            f"SELECT *, %s FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], "
            f"%s::integer[]) ON CONFLICT (canonical) DO NOTHING RETURNING canonical, id",
            [timezone.now(), *arrays],
        )
        return dict(cursor.fetchall())


def _existing(canonicals: list[str]) -> dict[str, int]:
    """On PostgreSQL one query with the names as one array parameter (`= ANY(%s)`): an IN list
    of 40,000 placeholders took seconds to build and send."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT canonical, id FROM {LlmModel._meta.db_table} WHERE canonical = ANY(%s)",
                [canonicals],
            )
            return dict(cursor.fetchall())
    ids = {}
    for start in range(0, len(canonicals), CHUNK):
        chunk = canonicals[start : start + CHUNK]
        ids |= dict(LlmModel.objects.filter(canonical__in=chunk).values_list("canonical", "id"))
    return ids


def _summaries(offers: list[OfferIn]) -> tuple[dict[str, str], dict[str, int]]:
    """Per canonical id: the first task stated, and the longest context reported."""
    task: dict[str, str] = {}
    context: dict[str, int] = {}
    for offer in offers:
        if offer.task:
            task.setdefault(offer.canonical_id, offer.task)
        if offer.context_length:
            context[offer.canonical_id] = max(
                context.get(offer.canonical_id, 0), offer.context_length
            )
    return task, context


def log_unknown_models(slug: str, catalog: Catalog) -> None:
    if catalog.unknown_models:
        named = ", ".join(f"{name!r} ×{n}" for name, n in catalog.unknown_models.most_common(20))
        logger.warning(
            "%s: %d offers name a model no alias identifies, each kept as its own model: %s",
            slug,
            catalog.unknown_models.total(),
            named,
        )

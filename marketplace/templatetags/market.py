"""The marketplace's template filters: the formatting functions (marketplace.formatting), and
what only the templates ask for (the filter panel's count, an offer's rows)."""

from __future__ import annotations

from decimal import Decimal

from django import template
from django.db import models

from marketplace.formatting import ago, percent, price_label, shown, thousands, usd

register = template.Library()
register.filter("usd", usd)
register.filter("thousands", thousands)
register.filter("ago", ago)
register.filter("price_label", price_label)
register.filter("percent", percent)


@register.filter
def per_vram_gb(offer) -> Decimal | None:
    """USD per GB of one GPU's memory per hour (the table's "per VRAM-GB" column); None when
    the provider states no GPU-hour price or no VRAM."""
    if offer.usd_per_gpu_hour is None or not offer.vram_gb:
        return None
    return (offer.usd_per_gpu_hour / Decimal(str(offer.vram_gb))).quantize(Decimal("0.0001"))


CAPABILITY_LABELS = {
    "tools": "tool calling",
    "structured-output": "structured output",
    "json-mode": "JSON mode",
}


@register.filter
def features(capabilities: list[str] | None) -> list[str]:
    """The capabilities a provider reported, in words: ["tool calling", "JSON mode"]."""
    return [CAPABILITY_LABELS[c] for c in capabilities or [] if c in CAPABILITY_LABELS]


@register.filter
def modalities(capabilities: list[str] | None) -> str:
    """ "text, image → text" from "input:…" and "output:…" capabilities; "" when unreported."""
    found = {"input": [], "output": []}
    for c in capabilities or []:
        side, _, modality = c.partition(":")
        if side in found and modality:
            found[side].append(modality)
    if not found["input"] and not found["output"]:
        return ""
    return f"{', '.join(found['input']) or '?'} → {', '.join(found['output']) or '?'}"


@register.filter
def get(mapping: dict, key: str):
    return mapping.get(key)


# What the "Filters" panel folds away on phones: facets and limits (the search box stays).
PANEL_FILTERS = ("kind", "provider", "region", "task", "gpu", "country")
PANEL_LIMITS = (
    *("min_vram", "max_price", "min_context", "unavailable"),
    *("rent", "min_reliability", "min_disk", "min_gpus", "min_cuda", "verified"),
)


@register.filter
def active_filters(form) -> int:
    """How many filters in the folded panel are in use: each chosen option counts."""
    return sum(_in_use(form.values[name]) for name in PANEL_FILTERS + PANEL_LIMITS)


def _in_use(value) -> int:
    if isinstance(value, list):
        return len(value)
    return int(value is not None and value is not False and value != "")  # 0 is a limit too


@register.filter
def extra_tags(tags: list[str] | None) -> list[str]:
    """Compliance tags other than the region one (the card shows the region already)."""
    return [t for t in tags or [] if not str(t).startswith("region=")]


# Stored fields read as what they mean: an available offer's last sighting is its provider's
# latest poll (Offer.seen_at); the G-Score value is shown after the score it gives.
READ_AS = {"last_seen": "seen_at"}
SHOWN_BEFORE = {"gscore_value": ("gscore", "G-Score")}


@register.filter
def every_field(offer: models.Model) -> list[tuple[str, str]]:
    """(label, shown value) for every stored field of a row, for the offer detail page; not
    the columns the database derives from the others for its own lookups (`facet_key`)."""
    rows = []
    for f in offer._meta.concrete_fields:
        if f.generated:
            continue
        if f.name in SHOWN_BEFORE:
            name, label = SHOWN_BEFORE[f.name]
            rows.append((label, shown(name, getattr(offer, name))))
        value = getattr(offer, READ_AS.get(f.name, f.name if f.is_relation else f.attname))
        rows.append((f.verbose_name, shown(f.name, value, key=f.primary_key)))
    return rows

"""Formatting for offer cards: prices as people read them, never a made-up zero."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from django import template
from django.db import models
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()

FIELD_LABELS = {  # each price field's unit, in words
    "usd_per_1m_input": "USD per 1M input tokens",
    "usd_per_1m_output": "USD per 1M output tokens",
    "usd_per_image": "USD per image",
    "usd_per_gpu_hour": "USD per GPU-hour",
    "usd_per_gpu_hour_min": "USD per GPU-hour (market low)",
    "usd_per_gpu_hour_max": "USD per GPU-hour (market high)",
    "usd_per_instance_hour": "USD per instance-hour",
}


@register.filter
def usd(value: Decimal | float | None) -> str:
    """$0.02, $0.00015, $1,234.50: at least cents, every significant digit stored."""
    if value is None or value == "":
        return ""
    text = format(Decimal(str(value)).normalize(), "f")
    whole, _, frac = text.partition(".")
    return f"${int(whole):,}.{frac.ljust(2, '0')}"


@register.filter
def thousands(value: int | None) -> str:
    """12,524: humanize's intcomma, without its locale machinery (called ~100 times a page)."""
    return "" if value is None else f"{value:,}"


@register.filter
def ago(moment: datetime | None) -> str:
    """How long since a moment, for freshness lines: "just now", "3 minutes ago", "never"."""
    if moment is None:
        return "never"
    if timezone.now() - moment < timedelta(minutes=1):
        return "just now"
    return f"{timesince(moment, depth=1)} ago"


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


@register.filter
def price_label(field: str) -> str:
    """A price field's unit in words: "USD per GPU-hour"."""
    return FIELD_LABELS.get(field, field)


@register.filter
def percent(value: float | None) -> str:
    """A 0–1 ratio as a percentage with one decimal place."""
    return "" if value is None else f"{value * 100:.1f}%"


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


# Decimal places shown for each float field on the offer page; a float not named here gets 2.
# Stored values keep every digit; this is only how they read.
FLOAT_PLACES = {
    "throughput_tps": 1,
    "latency_ms": 0,
    "vram_gb": 1,
    "vcpus": 1,
    "ram_gb": 1,
    "disk_gb": 1,
    "benchmark_score": 1,
    "gscore": 1,
}
RATIO_FIELDS = {"reliability"}  # 0–1, shown as a percentage


def _number(value: float, places: int) -> str:
    """24.7, 1,234.5, 80: rounded to `places`, thousands separated, no trailing ".0"."""
    text = f"{value:,.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


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
            rows.append((label, _shown(name, getattr(offer, name))))
        value = getattr(offer, READ_AS.get(f.name, f.name if f.is_relation else f.attname))
        rows.append((f.verbose_name, _shown(f.name, value, key=f.primary_key)))
    return rows


def _shown(name: str, value, key: bool = False) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):  # before int: a bool is an int
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return usd(value)
    if name in RATIO_FIELDS:
        return percent(value)
    if isinstance(value, float):
        return _number(value, FLOAT_PLACES.get(name, 2))
    if isinstance(value, int) and not key:
        return thousands(value)
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M} UTC"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)

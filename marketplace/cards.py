"""A page's offer cards, each one's HTML kept in the cache per version of the offer.

Rendering 24 cards was most of a page's Python time (~630 template variable lookups). A card
is the same HTML until the offer's row, its provider's name, documentation link, adapter or
G-Score scale, or the template changes, or the day does (a price sheet's age, a deprecation
date passing), so those make its key, and a page asks the cache for all its cards at once
(one `get_many`). Only cards the cache lacks are rendered, with their price history (one
query for all of them).

Two parts of a card move with the clock, not the offer, and are filled in on every request:
how long ago its provider was last polled (with the stale badge), and the sparkline's
points, drawn until now. The cached HTML holds a marker for each; a marker is made of NUL
characters, which no text from the database can hold.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from datetime import datetime
from functools import cache as once

from django.conf import settings
from django.core.cache import cache
from django.template.loader import get_template
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from marketplace import history
from marketplace.snapshot import cached
from providers import gscore
from providers.models import Kind, Offer, Provider
from resilience.store import UNREACHABLE

TEMPLATE = "marketplace/index.html"
FRESH = mark_safe("\x00fresh\x00")
POINTS = mark_safe("\x00points\x00")
CARD_SECONDS = 24 * 3600
# What a card shows of an offer: every column but the long description.
FIELDS = tuple(
    f.attname for f in Offer._meta.concrete_fields if f.name != "description" and not f.generated
)


@dataclass
class Card:
    html: str  # with FRESH, and POINTS where it has a sparkline
    provider_id: int
    sparkline: history.Sparkline | None


class Drawn(history.Sparkline):
    """A sparkline as the cached card holds it: its points a marker filled in per request."""

    points = POINTS


def cards(rows: list[dict], providers: list[Provider]) -> list[SafeString]:
    """The HTML of each row's card (rows: `FIELDS` of offers), in order."""
    now = timezone.now()
    by_pk = {p.pk: p for p in providers}
    keys = {row["id"]: key(row, by_pk[row["provider_id"]], now) for row in rows}
    found = _get_many(list(keys.values()))
    missing = [row for row in rows if keys[row["id"]] not in found]
    if missing:
        made = render(instances(missing, by_pk), now)
        _set_many({keys[pk]: card for pk, card in made.items()})
        found |= {keys[pk]: card for pk, card in made.items()}
    fresh = {pk: freshness(p) for pk, p in by_pk.items()}
    return [fill(found[keys[row["id"]]], fresh, now) for row in rows]


def key(row: dict, provider: Provider, now: datetime) -> str:
    """Everything a card's cached HTML depends on, digested."""
    material = (
        template_version(),
        tuple(row.values()),
        (provider.name, provider.docs_url, provider.adapter_path, provider.gscore_reference),
        timezone.localdate(now),  # a price sheet's age in days
        row["deprecated_at"] is not None and row["deprecated_at"] <= now,  # Offer.retired
        settings.PRICE_SHEET_MAX_AGE_DAYS,
    )
    digest = hashlib.blake2b(repr(material).encode(), digest_size=16).hexdigest()
    return f"marketplace:card:{row['id']}:{digest}"


def instances(rows: list[dict], by_pk: dict[int, Provider]) -> list[Offer]:
    """Offers from their rows, each given its provider (loaded already)."""
    offers = []
    for row in rows:
        offer = Offer.from_db("default", FIELDS, tuple(row[name] for name in FIELDS))
        offer.provider = by_pk[offer.provider_id]
        offers.append(offer)
    return offers


def render(offers: list[Offer], now: datetime) -> dict[int, Card]:
    """Each offer's card with its sparkline from one query, the clock's parts as markers."""
    changes = history.recent_changes(offers)
    made = {}
    for offer in offers:
        line = history.sparkline(offer, changes[offer.pk], now)
        offer.sparkline = line and Drawn(**vars(line))
        partial = "gpu-card" if offer.kind == Kind.GPU else "llm-card"
        context = {"offer": offer, "fresh": FRESH, "gscore_explanation": gscore.EXPLANATION}
        html = get_template(f"{TEMPLATE}#{partial}").render(context)
        made[offer.pk] = Card(html, offer.provider_id, line)
    return made


def freshness(provider: Provider) -> str:
    """How fresh a provider's prices are, as its cards say it."""
    return get_template(f"{TEMPLATE}#freshness").render({"provider": provider})


def fill(card: Card, fresh: dict[int, str], now: datetime) -> SafeString:
    html = card.html.replace(FRESH, fresh[card.provider_id])
    if card.sparkline is not None:
        card.sparkline.now = now
        html = html.replace(POINTS, card.sparkline.points)
    return mark_safe(html)


@once
def template_version() -> str:
    """The cards' template, digested: a changed card template misses every cached card."""
    source = get_template(TEMPLATE).template.source
    return hashlib.blake2b(source.encode(), digest_size=8).hexdigest()


def _get_many(keys: list[str]) -> dict[str, Card]:
    if not cached():
        return {}
    try:
        return cache.get_many(keys)
    except UNREACHABLE:
        return {}


def _set_many(cards: dict[str, Card]) -> None:
    if not cached():
        return
    with contextlib.suppress(UNREACHABLE):
        cache.set_many(cards, CARD_SECONDS)

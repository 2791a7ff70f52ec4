"""A page's offer cards, each one's HTML kept in the cache per version of the offer.

Rendering 24 cards was most of a page's Python time (~630 template variable lookups). A card
is the same HTML until the offer's row, its provider's name, documentation link, adapter or
G-Score scale, or the template changes, or the day does (a price sheet's age, a deprecation
date passing), so those make its key, and a page asks the cache for all its cards at once
(one `get_many`), after the cards this process keeps itself. Only cards neither has are
rendered, with their price history (one query for all of them).

Two parts of a card move with the clock, not the offer, and are filled in on every request:
how long ago its provider was last polled (with the stale badge), and the sparkline's
points, drawn until now. The cached HTML holds a marker for each; a marker is made of NUL
characters, which no text from the database can hold.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from datetime import datetime
from functools import cache as once
from typing import Any, NamedTuple

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS
from django.db.models import DEFERRED
from django.template.loader import get_template
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from marketplace import history, search
from marketplace.formatting import ago
from providers import gscore
from providers.models import Kind, Offer, Provider
from resilience.store import UNREACHABLE

TEMPLATE = "marketplace/index.html"
FRESH = mark_safe("\x00fresh\x00")
POINTS = mark_safe("\x00points\x00")
CARD_SECONDS = 24 * 3600
# Cards kept in this process too (about 3 KB each), so a page seen again costs no round trip.
LOCAL_CARDS = 5000
_LOCAL: dict[str, Card] = {}
FIELDS = search.CARD_FIELDS


class Card(NamedTuple):
    html: str  # with FRESH, and POINTS where it has a sparkline
    provider_id: int
    since: datetime | None  # the sparkline's start and steps, to draw it until now
    steps: list | None


class Drawn(history.Sparkline):
    """A sparkline as the cached card holds it: its points a marker filled in per request."""

    points = POINTS


def cards(rows: list[dict], providers: list[Provider]) -> list[SafeString]:
    """The HTML of each row's card (`search.page_of_offers`), in order."""
    now = timezone.now()
    by_pk = {p.pk: p for p in providers}
    on_page = {row["provider_id"] for row in rows}
    page_wide = _page_wide(now)
    shared = {pk: _digest((page_wide, _shown(by_pk[pk]))) for pk in on_page}
    keys = {row["id"]: key(row, shared[row["provider_id"]], now) for row in rows}
    found = {k: card for k in keys.values() if (card := _LOCAL.get(k)) is not None}
    if len(found) < len(keys):
        found |= _get_many([k for k in keys.values() if k not in found])
    missing = [row for row in rows if keys[row["id"]] not in found]
    if missing:
        made = {keys[pk]: card for pk, card in render(instances(missing, providers), now)}
        _set_many(made)
        found |= made
    if len(_LOCAL) + len(found) > LOCAL_CARDS:
        _LOCAL.clear()
    _LOCAL.update(found)
    fresh = {pk: freshness(by_pk[pk]) for pk in on_page}
    return [fill(keys[row["id"]], found[keys[row["id"]]], fresh, now) for row in rows]


def key(row: dict, shared: str, now: datetime) -> str:
    """A card's key: the row's version (a digest of what a card may show of it), whether its
    deprecation date has passed (Offer.retired), and `shared`, the digest of what it shows
    of elsewhere."""
    if "doc" in row:  # text already: digested as it is
        version = hashlib.blake2b(row["doc"].encode(), digest_size=12).hexdigest()
    else:
        version = _digest([row[name] for name in FIELDS])
    deprecated = row["deprecated_at"]
    retired = deprecated is not None and deprecated <= now
    return f"marketplace:card:{row['id']}:{version}:{shared}:{retired:d}"


def _page_wide(now: datetime) -> tuple:
    """What every card depends on: the template, the day (a price sheet's age in days)."""
    return template_version(), timezone.localdate(now), settings.PRICE_SHEET_MAX_AGE_DAYS


def _shown(provider: Provider) -> tuple:
    """What a card shows of its provider, besides its freshness."""
    return provider.name, provider.docs_url, provider.adapter_path, provider.gscore_reference


def instances(rows: list[dict], providers: list[Provider]) -> list[Offer]:
    """Offers from their rows, each given its provider (loaded already)."""
    by_pk = {p.pk: p for p in providers}
    offers = []
    for row in rows:
        values = _values(row)
        loaded = [values.get(f.attname, DEFERRED) for f in Offer._meta.concrete_fields]
        offer = Offer.from_db(DEFAULT_DB_ALIAS, FIELDS, loaded)
        offer.provider = by_pk[offer.provider_id]
        offers.append(offer)
    return offers


def _values(row: dict) -> dict[str, Any]:
    """A row's FIELDS by name: its `doc` (search.ROW_DOC) parsed, when it has one."""
    if "doc" not in row:
        return row
    return {
        name: value if value is None else convert(value)
        for (name, convert), value in zip(_CONVERTERS, json.loads(row["doc"]), strict=True)
    }


# Per field of FIELDS, in order: its value in Python from its value in JSON.
_CONVERTERS = [(f.attname, f.to_python) for f in Offer._meta.concrete_fields if f.attname in FIELDS]


def render(offers: list[Offer], now: datetime) -> list[tuple[int, Card]]:
    """Each offer's card with its sparkline from one query, the clock's parts as markers."""
    changes = history.recent_changes(offers)
    made = []
    for offer in offers:
        line = history.sparkline(offer, changes[offer.pk], now)
        offer.sparkline = line and Drawn(**vars(line))
        partial = "gpu-card" if offer.kind == Kind.GPU else "llm-card"
        context = {"offer": offer, "fresh": FRESH, "gscore_explanation": gscore.EXPLANATION}
        html = get_template(f"{TEMPLATE}#{partial}").render(context)
        since, steps = (line.since, line.steps) if line else (None, None)
        made.append((offer.pk, Card(html, offer.provider_id, since, steps)))
    return made


def freshness(provider: Provider) -> str:
    """How fresh a provider's prices are, as its cards say it: rendered once for each way
    of saying it (the words change by the minute at most)."""
    said = (provider.pk, provider.name, ago(provider.last_success_at), provider.is_stale())
    found = _FRESHNESS.get(said)
    if found is None:
        if len(_FRESHNESS) >= LOCAL_CARDS:
            _FRESHNESS.clear()
        found = _FRESHNESS[said] = get_template(f"{TEMPLATE}#freshness").render(
            {"provider": provider}
        )
    return found


_FRESHNESS: dict[tuple, str] = {}


def items(cards: list[SafeString]) -> SafeString:
    """The cards as the page's list items (a template loop over them cost a quarter of a
    fragment's rendering)."""
    return mark_safe("".join(f"<li>{card}</li>\n" for card in cards))


def fill(key: str, card: Card, fresh: dict[int, str], now: datetime) -> SafeString:
    """The card for now: its freshness line and sparkline filled in. Kept per card while
    both read the same (the line's points for the span `history.lasting` gives)."""
    said = fresh[card.provider_id]
    elapsed = 0.0 if card.since is None else (now - card.since).total_seconds()
    kept = _FILLED.get(key)
    if kept is not None and kept[0] == said and kept[1] <= elapsed <= kept[2]:
        return kept[3]
    html, since, until = card.html.replace(FRESH, said), 0.0, math.inf
    if card.steps is not None:
        points, since, until = history.lasting(card.since, card.steps, now)
        html = html.replace(POINTS, points)
    if len(_FILLED) >= LOCAL_CARDS:
        _FILLED.clear()
    filled = _FILLED[key] = (said, since, until, mark_safe(html))
    return filled[3]


# Card key → (freshness line, seconds after the line's start from and until which the
# points hold, the filled card).
_FILLED: dict[str, tuple[str, float, float, SafeString]] = {}


def forget() -> None:
    """Let go of every card this process keeps (as after a restart)."""
    _LOCAL.clear()
    _FILLED.clear()
    _FRESHNESS.clear()


@once
def template_version() -> str:
    """The cards' template, digested: a changed card template misses every cached card."""
    return _digest(get_template(TEMPLATE).template.source)


def _digest(value: Any) -> str:
    return hashlib.blake2b(repr(value).encode(), digest_size=12).hexdigest()


def cached() -> bool:
    """Whether the cache is worth a round trip: not when it is the database itself (the
    embedded default), where a cache read is one more query than what it saves."""
    return not settings.CACHES["default"]["BACKEND"].endswith("DatabaseCache")


def _get_many(keys: list[str]) -> dict[str, Card]:
    if not cached():
        return {}
    try:
        return cache.get_many(keys)
    except UNREACHABLE:
        return {}


def _set_many(cards: dict[str, Card]) -> None:
    if cached():
        with contextlib.suppress(UNREACHABLE):
            cache.set_many(cards, CARD_SECONDS)

"""What every marketplace page reads besides its page of offers: the providers with their last
poll's outcome, and what only a poll changes: the facet roll-up (`OfferFacet`) and the
countries offers are in.

The provider rows are read on every request (one query, compiled once per process). The rest
was a third of a page's time (the countries a scan of every offer), so it is kept under a
fingerprint of those rows: every poll changes them (the poll lock taken and released,
`last_polled_at`, and `offers_seen_at`, which the ingest writes in the same transaction as
the roll-ups), so a page never shows a roll-up older than the provider rows beside it. Kept
twice: in this process for the last fingerprint seen (no round trip at all while no poll
ends), and in the shared cache for the other processes.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, QueryDict
from django.template.loader import get_template
from django.utils.safestring import SafeString, mark_safe

from marketplace import cards, compare, search, status
from marketplace.cards import cached
from marketplace.filters import OfferFilter, Page, count_swaps, table_links
from marketplace.search import PAGE_SIZE, CatalogRow
from providers import gscore
from providers.models import Provider
from resilience.store import UNREACHABLE

# A backstop for what the fingerprint cannot see (nothing the pipeline does today).
SNAPSHOT_SECONDS = 600
KEPT = 512


@dataclass
class Snapshot:
    fingerprint: str
    providers: list[Provider]
    catalog: list[CatalogRow]
    countries: list[str]
    # Results worth keeping until the next poll, by what they answer (marketplace.search).
    kept: dict[Any, Any] = field(default_factory=dict)

    def keep(self, key: Any, build: Callable[[], Any]) -> Any:
        """`build()`'s result, built once while this snapshot is current (at most KEPT
        results: the oldest are let go all at once)."""
        found = self.kept.get(key)
        if found is None:
            if len(self.kept) >= KEPT:
                self.kept.clear()
            found = self.kept[key] = build()
        return found


_last: Snapshot | None = None


def snapshot() -> Snapshot:
    """The providers as stored now, with the roll-ups of the offers they last polled."""
    global _last
    stored = status.providers_now()
    fingerprint = hashlib.blake2b(stored.encode(), digest_size=16).hexdigest()
    last = _last
    if last is not None and last.fingerprint == fingerprint:
        return last
    providers = status.providers(stored)
    _last = Snapshot(fingerprint, providers, *rollups(fingerprint))
    return _last


def rollups(fingerprint: str) -> tuple[list[CatalogRow], list[str]]:
    if not cached():
        return search.catalog_rows(), search.countries()
    key = f"marketplace:rollups:{fingerprint}"
    found = None
    with contextlib.suppress(UNREACHABLE):  # pages go on from the database alone
        found = cache.get(key)
    if found is None:
        found = (search.catalog_rows(), search.countries())
        with contextlib.suppress(UNREACHABLE):
            cache.set(key, found, SNAPSHOT_SECONDS)
    return found


# --- what one query shows, kept while the snapshot is current ---------------------------------
PAGE = "marketplace/index.html"
RESULTS = f"{PAGE}#results"
FILTERS = f"{PAGE}#filter-form"
# Where the cards go in kept results: NUL characters, which no text from the database holds.
CARDS = mark_safe("\x00cards\x00")


def listing(stored: Snapshot, params: QueryDict) -> dict[str, Any]:
    """What the marketplace shows for these filters that only a poll changes (the form, its
    facets and their counts, the page or the groups, the links), for its template; the same
    for every request of one query between two polls, so kept with the snapshot."""
    query = params.urlencode()
    return stored.keep(("listing", query), lambda: _listing(stored, params, query))


def _listing(stored: Snapshot, params: QueryDict, query: str) -> dict[str, Any]:
    form = OfferFilter(
        params, providers=stored.providers, catalog=stored.catalog, countries=stored.countries
    )
    counts, total = stored.keep(
        ("counts", form.criteria.shape),
        lambda: search.facet_counts(form.criteria, stored.catalog),
    )
    groups = None
    if form.grouping == "offer":
        page = Page(form, total)
    else:  # one card per model or GPU model, each opening onto its offers
        groups, page = grouped(form, stored.catalog)
    facets = form.facets(counts)
    return {
        "form": form,
        "facets": facets,
        "count_swaps": count_swaps(facets),
        "total": total,
        "page": page,
        "groups": groups,
        "ungrouped": form.querystring(group="offer", page=None),
        "pushed": form.querystring(page=page.number),
        "contradiction": form.contradiction(),
        **table_links(form, page),
        "gscore_explanation": gscore.EXPLANATION,
        "query": query,  # the key the results and the filters are kept under
    }


def grouped(form: OfferFilter, catalog_rows: list[CatalogRow]) -> tuple[list[dict], Page]:
    """A page of groups and the Page: an aggregate over every matching offer (~280 ms of SQL
    for all LLM offers at 100,000), kept with the listing until the next poll."""
    matching = search.offers(form.criteria, search.choice(form.criteria, catalog_rows))
    page_number = (form.values["page"] or 1) - 1
    groups, count = compare.groups(matching, form.grouping, page_number * PAGE_SIZE, PAGE_SIZE)
    page = Page(form, count)
    if page.number - 1 != page_number:  # asked past the end: the last page
        groups, _ = compare.groups(matching, form.grouping, page.offset, PAGE_SIZE)
    return groups, page


def results(
    stored: Snapshot, context: dict[str, Any], shown: list[SafeString], request: HttpRequest
) -> SafeString:
    """The results' HTML with these cards. Kept but for the cards, which say how fresh they
    are, for each query, way of asking (page or fragment), notices and kind of visitor;
    rendered each time in the table view, whose rows say it too."""
    items = cards.items(shown)
    if context["form"].values["view"] == "table":
        return get_template(RESULTS).render(context | {"card_items": items}, request)
    key = (
        "results",
        context["query"],
        context["fragment"],
        bool(shown),  # the same between polls; said here, as the template reads it
        tuple((provider.pk, reason) for provider, reason in context["notices"]),
        context["live_stats_unavailable"],
        # Staff see other links. Without a session there is no user to read (and so no
        # `Vary: Cookie` to add to an anonymous answer).
        settings.SESSION_COOKIE_NAME in request.COOKIES and request.user.is_staff,
    )
    frame = stored.keep(
        key, lambda: get_template(RESULTS).render(context | {"card_items": CARDS}, request)
    )
    return mark_safe(frame.replace(CARDS, items))


def filter_form(stored: Snapshot, context: dict[str, Any], request: HttpRequest) -> SafeString:
    """The filter form as the page renders it: the same for every request of one query."""
    return stored.keep(
        ("filters", context["query"]), lambda: get_template(FILTERS).render(context, request)
    )

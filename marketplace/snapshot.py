"""What every marketplace page reads besides its page of offers: the providers with their last
poll's outcome, and what only a poll changes: the facet roll-up (`OfferFacet`) and the
countries offers are in.

The providers are read on every request (one query, compiled once per process). The rest was
a third of a page's time (the countries a scan of every offer), so it is kept in the cache
under a fingerprint of the provider rows just read: every poll changes them (the poll lock
taken and released, `last_polled_at`, and `offers_seen_at`, which the ingest writes in the
same transaction as the roll-ups), so a page never shows a roll-up older than the provider
rows it shows beside it.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from marketplace import search
from marketplace.search import CatalogRow
from marketplace.status import providers_now
from providers.models import Provider
from resilience.store import UNREACHABLE

# A backstop for what the fingerprint cannot see (nothing the pipeline does today).
SNAPSHOT_SECONDS = 600


@dataclass
class Snapshot:
    providers: list[Provider]
    catalog: list[CatalogRow]
    countries: list[str]


def snapshot() -> Snapshot:
    """The providers as stored now, with the roll-ups of the offers they last polled."""
    providers = providers_now()
    if not cached():
        return Snapshot(providers, search.catalog_rows(), search.countries())
    key = f"marketplace:rollups:{fingerprint(providers)}"
    try:
        found = cache.get(key)
    except UNREACHABLE:  # pages go on from the database alone
        found = None
    if found is None:
        found = (search.catalog_rows(), search.countries())
        with contextlib.suppress(UNREACHABLE):
            cache.set(key, found, SNAPSHOT_SECONDS)
    return Snapshot(providers, *found)


def fingerprint(rows: list) -> str:
    """A digest of model rows' stored and annotated values."""
    values = [tuple(v for k, v in vars(row).items() if k != "_state") for row in rows]
    return hashlib.blake2b(repr(values).encode(), digest_size=16).hexdigest()


def cached() -> bool:
    """Whether the cache is worth a round trip: not when it is the database itself (the
    embedded default), where a cache read is one more query than what it saves."""
    return not settings.CACHES["default"]["BACKEND"].endswith("DatabaseCache")

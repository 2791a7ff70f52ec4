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

from marketplace import search, status
from marketplace.search import CatalogRow
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
    text = stored if isinstance(stored, str) else repr(stored)
    fingerprint = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
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


def cached() -> bool:
    """Whether the cache is worth a round trip: not when it is the database itself (the
    embedded default), where a cache read is one more query than what it saves."""
    return not settings.CACHES["default"]["BACKEND"].endswith("DatabaseCache")

"""Why a provider has nothing on the marketplace, in words a visitor can act on.

Loaded with the providers in one query (`providers_with_status`), so the page pays no
query per provider for keys or poll runs.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.db.models import Exists, OuterRef, QuerySet, Subquery

from marketplace import sql
from marketplace.formatting import ago, every
from providers.models import Credential, PollRun, Provider
from resilience import breaker, errors
from resilience.store import UNREACHABLE

REFUSED = errors.CircuitBreakerOpen.__name__
# What a visitor reads for each failure class a poll records (resilience.errors' labels).
LABELS = {
    cls.__name__: cls.label
    for cls in (
        errors.MissingKey,
        errors.InvalidKey,
        errors.Forbidden,
        errors.NotFound,
        errors.RateLimited,
        errors.Transient,
        errors.BadPayload,
        errors.NotSupported,
        errors.RateLimitExceeded,
        errors.ProviderError,
    )
}


def providers_with_status() -> QuerySet[Provider]:
    finished = PollRun.objects.filter(
        provider=OuterRef("pk"),
        outcome__in=[*PollRun.SUCCEEDED, *PollRun.FAILURES],
    ).order_by("-started_at")
    # While the breaker is open, polls fail as CircuitBreakerOpen: the cause is the failure
    # before them.
    causes = finished.filter(outcome=PollRun.Outcome.FAILED).exclude(error_class=REFUSED)
    return Provider.objects.annotate(
        has_credential=Exists(Credential.objects.filter(provider=OuterRef("pk"))),
        last_outcome=Subquery(finished.values("outcome")[:1]),
        last_error_class=Subquery(finished.values("error_class")[:1]),
        last_cause_class=Subquery(causes.values("error_class")[:1]),
    )


@functools.cache
def _prepared(vendor: str) -> sql.Prepared:
    """Compiled once per process: building this query (three subqueries and an EXISTS) cost
    more Python than the database spends running it."""
    return sql.prepare(providers_with_status())


def providers_now() -> str:
    """`providers_with_status()`'s rows as stored now, as one JSON text (equal rows, equal
    text), which a process that has seen it need not read again: describing and converting
    seven rows of some thirty columns on every request cost more Python than the page's own
    query. PostgreSQL writes the text itself; elsewhere (SQLite) the rows are dumped here."""
    prepared = _prepared(connection.vendor)
    if connection.vendor != "postgresql":
        return json.dumps(sql.rows(prepared), cls=DjangoJSONEncoder)
    # json_agg keeps the order of its sorted subquery (no join around it).
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT coalesce(json_agg(t), '[]')::text FROM ({prepared.sql}) t")
        return cursor.fetchone()[0]


def providers(stored: str) -> list[Provider]:
    """`providers_now()` as the Providers `providers_with_status()` gives."""
    return [provider(_converted(row)) for row in json.loads(stored)]


def _converted(row: dict[str, Any]) -> dict[str, Any]:
    """A provider's row as JSON gave it, its columns' values as the database driver would."""
    return {
        name: value if value is None or name not in CONVERTERS else CONVERTERS[name](value)
        for name, value in row.items()
    }


def provider(row: dict[str, Any]) -> Provider:
    """A row of `providers_with_status()` as the Provider that query gives."""
    values = dict(row)
    found = Provider.from_db(connection.alias, FIELDS, [values.pop(name) for name in FIELDS])
    for name, value in values.items():  # the annotations
        setattr(found, name, value)
    return found


FIELDS = [field.attname for field in Provider._meta.concrete_fields]
CONVERTERS = {field.column: field.to_python for field in Provider._meta.concrete_fields}


def problem(provider: Provider, breaker_open: bool = False) -> str:
    """The reason a provider may be missing from the page, or "" when it is healthy.

    Expects a provider from `providers_with_status()`.
    """
    if not provider.is_enabled:
        return f"disabled {provider.disabled_by}"
    if provider.key_required and not (provider.has_credential or provider.setting("API_KEY")):
        return f"no API key configured (set {provider.env_prefix}_API_KEY or add one in admin)"
    if breaker_open:  # the cause first, what it led to second
        tripped = "circuit breaker open: calls are paused after repeated failures"
        cause = provider.last_cause_class
        return f"last poll failed: {failure(cause)}; {tripped}" if cause else tripped
    if provider.last_outcome == PollRun.Outcome.ABANDONED:
        return "last poll failed (its worker stopped mid-poll)"
    if provider.last_outcome == PollRun.Outcome.FAILED:
        return f"last poll failed: {failure(provider.last_error_class)}"
    if not provider.last_polled_at and not provider.last_success_at:
        return "never polled"
    if not provider.last_success_at:
        return "no successful poll yet"
    if provider.is_stale():  # the rule behind the cards' "stale" badge
        return (
            f"prices last updated {ago(provider.last_success_at)}"
            f" (polled every {every(provider.poll_interval)})"
        )
    return ""


def failure(error_class: str | None) -> str:
    """A poll's error class in words: "Transient" → "unreachable (Transient)"."""
    found = LABELS.get(error_class or "")
    return f"{found} ({error_class})" if found else (error_class or "error")


def notices(
    providers: list[Provider], chosen: list[str]
) -> tuple[list[tuple[Provider, str]], bool]:
    """Each provider in view (all, or the ones filtered on) that has a problem, with it; and
    whether the live stats (the shared store) could be read: without them the page goes on
    from the database alone."""
    in_view = [p for p in providers if not chosen or p.slug in chosen]
    try:
        tripped, live = breaker.open_among([p.slug for p in in_view]), True
    except UNREACHABLE:
        tripped, live = set(), False
    return [(p, reason) for p in in_view if (reason := problem(p, p.slug in tripped))], live

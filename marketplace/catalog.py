"""The catalog as programs and the comparison pages read it: offers filtered like the
marketplace, grouped by model or GPU, and the validators that make a repeat request free.

Everything here answers from PostgreSQL alone (no Redis): the API and pages keep answering
when the shared cache is down.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Case, F, QuerySet, When
from django.utils import timezone

from marketplace import status
from marketplace.filters import KINDS
from marketplace.search import AnyOf, Criteria
from providers.models import UNIT_PRICE, LlmModel, Offer, PollRun, Provider

DEFAULT_MAX_AGE = 60


@dataclass
class Filters:
    """The marketplace's filters, already validated (by the API's schema or a page's form)."""

    provider: list[str] = field(default_factory=list)
    region: list[str] = field(default_factory=list)
    gpu: list[str] = field(default_factory=list)
    task: str | None = None
    kind: str | None = None
    min_vram: float | None = None
    max_price: Decimal | None = None
    min_context: int | None = None
    q: str | None = None
    unavailable: bool = False

    def id_order(self) -> list[str]:
        """Id order, led by a column the filters hold to one value, so PostgreSQL walks that
        column's (column, id) index (Offer.Meta.indexes): the same order, but the planner,
        taking matches to be spread evenly over ids, would otherwise walk the id index and
        skip every offer of other kinds first."""
        if len(self.gpu) == 1:
            return ["gpu_name", "id"]
        if len(self.provider) == 1:
            return ["provider_id", "id"]
        if self.kind:
            return ["kind", "id"]
        return ["id"]

    def criteria(self, providers: list[Provider]) -> Criteria:
        """The marketplace's `Criteria` for these filters (facet values as stored)."""
        return Criteria(
            selected={
                "kind": {KINDS[self.kind]} if self.kind else set(),
                "provider_id": {p.pk for p in providers if p.slug in self.provider},
                "region": set(self.region),
                "task": {self.task} if self.task else set(),
                "gpu_name": set(self.gpu),
            },
            q=self.q,
            min_vram=self.min_vram,
            max_price=self.max_price,
            min_context=self.min_context,
            unavailable=self.unavailable,
        )

    def apply(self, offers: QuerySet[Offer], providers: list[Provider]) -> QuerySet[Offer]:
        """The offers passing every filter: the facets on their own columns, the rest as the
        marketplace refines (`Criteria.refinements`). Facet values are written as
        `= ANY(array)` (AnyOf): PostgreSQL cannot then treat the column as one known value
        and drop it from `id_order()`, so it walks that column's (column, id) index."""
        criteria = self.criteria(providers)
        offers = offers.annotate(unit_price=UNIT_PRICE)
        if self.provider and not criteria.selected["provider_id"]:
            return offers.none()  # no provider has that slug: as on the marketplace
        facets = [
            AnyOf(F(column), sorted(chosen))
            for column, chosen in criteria.selected.items()
            if chosen
        ]
        return criteria.available(offers.filter(*facets, criteria.refinements()))


def seen_at() -> Case:
    """Offer.seen_at in SQL: the provider's latest poll for an offer still available."""
    return Case(
        When(
            available=True,
            provider__offers_seen_at__gt=F("last_seen"),
            then=F("provider__offers_seen_at"),
        ),
        default=F("last_seen"),
    )


# --- provider health, in short words a program can switch on -------------------------------
def providers() -> list[Provider]:
    """Every provider with its latest finished poll's outcome, in one query compiled once per
    process (`status.providers_now`)."""
    return status.providers(status.providers_now())


def health(provider: Provider, now: datetime | None = None) -> str:
    """ok, stale, failing, never-polled, no-key or disabled (the marketplace's notices, as
    codes; the shared circuit breakers are not read, so this needs no Redis)."""
    if not provider.is_enabled:
        return "disabled"
    if provider.key_required and not (provider.has_credential or provider.setting("API_KEY")):
        return "no-key"
    if provider.last_outcome == PollRun.Outcome.FAILED:
        return "failing"
    if not provider.last_success_at:
        return "never-polled"
    return "stale" if provider.is_stale(now) else "ok"


# --- validators -----------------------------------------------------------------------------
@dataclass
class Validators:
    etag: str
    last_modified: datetime | None
    max_age: int


def validators(request_key: str, providers: list[Provider]) -> Validators:
    """The catalog changes only when a poll lands (or a provider's health moves), so the
    providers' poll times and health are its version; the request's path and query make the
    ETag this representation's. max-age runs to the soonest next poll."""
    now = timezone.now()
    state = [
        (p.pk, p.offers_seen_at, p.last_success_at, p.last_polled_at, health(p, now))
        for p in providers
    ]
    digest = hashlib.blake2s(repr((request_key, state)).encode(), digest_size=12).hexdigest()
    moments = [m for p in providers for m in (p.offers_seen_at, p.last_polled_at) if m]
    return Validators(
        etag=f'W/"{digest}"',
        last_modified=max(moments, default=None),
        max_age=max_age(providers, now),
    )


def max_age(providers: list[Provider], now: datetime) -> int:
    """Seconds until the soonest poll an enabled provider is due for (at most its interval).
    Providers never polled, or overdue, say nothing about when data will next change."""
    due = []
    for p in providers:
        if not p.is_enabled or p.last_polled_at is None:
            continue
        left = p.poll_interval - (now - p.last_polled_at).total_seconds()
        if left > 0:
            due.append(int(left))
    return min(due, default=DEFAULT_MAX_AGE)


def price_row(offer: dict[str, Any], by_pk: dict[int, Provider], now: datetime) -> dict:
    """One offer as the API shows it (from `Offer.objects.values()` plus `model`)."""
    provider = by_pk[offer["provider_id"]]
    polled = provider.offers_seen_at
    seen = offer["last_seen"]
    if offer["available"] and polled and polled > seen:
        seen = polled
    return {
        **{k: v for k, v in offer.items() if k not in {"provider_id", "last_seen", "gpu_name"}},
        "gpu": offer["gpu_name"],
        "provider": provider.slug,
        "provider_health": health(provider, now),
        "status": "available" if offer["available"] else "unavailable",
        "seen_at": seen,
    }


# --- the API's rows, written as JSON by PostgreSQL ------------------------------------------
def _number(column: str) -> str:
    """A number as JSON: unknown, NaN and infinities are null, as pydantic writes them."""
    return f"NULLIF(NULLIF(NULLIF({column}::float8, 'NaN'), 'Infinity'), '-Infinity')"


def _moment(column: str) -> str:
    """A moment in UTC, as pydantic writes one (RFC 3339, microseconds, Z)."""
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


# Each field of the API's PriceRow in its order, as SQL over the offer (o), its provider
# (p: id, slug, health, offers_seen_at, as the request loaded them) and its model (m).
ROW_SQL = {
    **{
        field: _number(f"o.{field}")
        for field in (
            "usd_per_1m_input",
            "usd_per_1m_output",
            "usd_per_image",
            "usd_per_gpu_hour",
            "usd_per_gpu_hour_min",
            "usd_per_gpu_hour_max",
            "usd_per_instance_hour",
        )
    },
    "native_price": "o.native_price",
    "price_source": "o.price_source",
    "price_source_url": "o.price_source_url",
    "price_source_date": "o.price_source_date",
    "id": "o.id",
    "provider": "p.slug",
    "provider_health": "p.health",
    "kind": "o.kind",
    "name": "o.name",
    "upstream_id": "o.upstream_id",
    "model": "m.canonical",
    "serving_provider": "o.serving_provider",
    "region": "o.region",
    "country": "o.country",
    "task": "o.task",
    "task_tag": "o.task_tag",
    "context_length": "o.context_length",
    "throughput_tps": _number("o.throughput_tps"),
    "latency_ms": _number("o.latency_ms"),
    "gpu": "o.gpu_name",
    "gpu_count": "o.gpu_count",
    "vram_gb": _number("o.vram_gb"),
    "status": "CASE WHEN o.available THEN 'available' ELSE 'unavailable' END",
    # Offer.seen_at: an offer still available was seen by its provider's latest poll.
    "seen_at": _moment(
        "CASE WHEN o.available AND p.offers_seen_at > o.last_seen"
        " THEN p.offers_seen_at ELSE o.last_seen END"
    ),
    "last_price_change": _moment("o.last_price_change"),
}
# The offers a query of ids selects, in its order (ARRAY(subquery) keeps it), each as one
# JSON object (row_to_json of a row whose columns are the fields, so in their order).
ROWS_SQL = f"""
SELECT o.id, row_to_json(r)::text
FROM unnest(ARRAY({{ids}})) WITH ORDINALITY AS page (id, n)
JOIN {Offer._meta.db_table} AS o ON o.id = page.id
JOIN json_to_recordset(%s::json)
    AS p (id bigint, slug text, health text, offers_seen_at timestamptz) ON p.id = o.provider_id
LEFT JOIN {LlmModel._meta.db_table} AS m ON m.id = o.llm_model_id
CROSS JOIN LATERAL (SELECT {", ".join(f'{sql} AS "{name}"' for name, sql in ROW_SQL.items())}) r
ORDER BY page.n
"""


def json_rows(ids: QuerySet[Offer], providers: list[Provider]) -> list[tuple[int, str]]:
    """(id, the offer as the API's JSON row) for each offer `ids` (a `values("id")` query)
    selects, in its order; PostgreSQL only. One query whose select list is written once:
    compiling ~35 columns and loading them into Python, then validating and encoding them
    with pydantic, was ~10 ms of CPU for a page of 100; PostgreSQL writes the JSON in ~1 ms."""
    try:
        ids_sql, params = ids.query.sql_with_params()
    except EmptyResultSet:
        return []
    now = timezone.now()
    state = [
        {"id": p.pk, "slug": p.slug, "health": health(p, now), "offers_seen_at": p.offers_seen_at}
        for p in providers
    ]
    with connection.cursor() as cursor:
        cursor.execute(ROWS_SQL.format(ids=ids_sql), (*params, json.dumps(state, default=str)))
        return cursor.fetchall()

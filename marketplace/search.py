"""The marketplace's queries: one page of matching offers, and the counts beside the filters.

What a visitor asked for arrives as `Criteria`, in stored values (the filter form,
marketplace.filters, turns the URL into them); the functions here know nothing of the URL.

Facet counts are disjunctive, as in any shop's sidebar: the number beside a provider is how
many offers that provider has given every *other* active filter. They come from one GROUP BY
over `Offer.facet_key` (the five facet values in one column); the per-facet sums are done here
over the combinations it returns (a few thousand at most), instead of one COUNT query per facet
over every offer. The stored combinations (`OfferFacet`, "the catalog") turn a choice of
facet values into the keys it covers, so the offers query filters on one indexed column.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection
from django.db.models import (
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    FloatField,
    OrderBy,
    Q,
    QuerySet,
    Sum,
    TextField,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import NullIf
from django.db.models.lookups import In

from marketplace import sql
from providers.models import UNIT_PRICE, Offer, OfferFacet, OfferPriceBand

PAGE_SIZE = 24
# The Offer columns the facets group and filter by, in the order they make up `facet_key`.
FACET_COLUMNS = ("kind", "provider_id", "region", "task", "gpu_name")
# Providers report usable memory, a little under the size a GPU is sold by (Vast.ai lists an
# H100 80GB at 81,559 MiB = 79.6 GB), so "at least 80 GB" compares in whole GB. An offer whose
# GPU the catalog knows stores the spec size (providers/gpus.py); this covers the rest.
VRAM_SLACK_GB = 0.5


class AnyOf(In):
    """`column IN (values)`, written on PostgreSQL as `column = ANY(%s)` with the values as
    one array parameter: a broad choice (every GPU) is a few hundred facet keys, which as
    many placeholders cost ~2 ms a request to build and parse."""

    def as_postgresql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", (*params, list(self.rhs))


@dataclass(frozen=True)
class Sort:
    label: str
    expression: Any
    descending: bool
    # Whether an index orders each facet key's available offers by it (Offer.Meta.indexes),
    # so a page of a few facet keys is merged from each key's first offers (`merged_ids`).
    keyed: bool = True

    def order(self) -> OrderBy:
        """The order, unknown values last."""
        return OrderBy(self.expression, descending=self.descending, nulls_last=True)


SORTS = {
    "price": Sort("Price, lowest first", UNIT_PRICE, descending=False),
    "throughput": Sort("Throughput, highest first", F("throughput_tps"), descending=True),
    # By the stored value, the order of the score shown (providers.gscore).
    "gscore": Sort("G-Score, highest first", F("gscore_value"), descending=True),
    "context": Sort("Context length, longest first", F("context_length"), descending=True),
    "newest": Sort("Newest first", F("first_seen"), descending=True),
    "output": Sort(
        "Output price, lowest first", F("usd_per_1m_output"), descending=False, keyed=False
    ),
    # USD per GPU-hour over one GPU's memory: what a GB of VRAM costs an hour. Offers with
    # no price or no VRAM stated sort last (NULL), never as free.
    "vram_price": Sort(
        "Price per GB of VRAM, lowest first",
        ExpressionWrapper(
            F("usd_per_gpu_hour") / NullIf(F("vram_gb"), Value(0.0)), output_field=FloatField()
        ),
        descending=False,
        keyed=False,
    ),
}


class CatalogRow(NamedTuple):
    """One stored combination of facet values (`OfferFacet`) and how many offers hold it."""

    kind: str
    provider_id: int
    region: str
    task: str
    gpu_name: str
    key: str  # their Offer.facet_key
    vram_low: float  # -1 when an offer has no VRAM figure
    vram_high: float | None  # None when none has one
    available: bool
    offers: int


class Choice(NamedTuple):
    """The facet keys of the combinations passing every facet filter, and their offers
    (in all, and per key)."""

    keys: set[str]
    offers: int
    per_key: Counter


@dataclass(frozen=True)
class Criteria:
    """What the visitor asked for, in stored values."""

    selected: dict[str, set]  # per facet column, the values chosen (an empty set: any)
    q: str | None = None
    min_vram: float | None = None
    max_price: Decimal | None = None
    min_context: int | None = None
    unavailable: bool = False  # list unavailable offers too
    sort: str = "price"
    # A GPU renter's filters: an offer whose provider does not state the field never passes.
    rent: str = ""  # "on-demand" or "interruptible"
    min_reliability: float | None = None  # 0–1
    countries: tuple[str, ...] = ()
    min_disk: float | None = None
    min_gpus: int | None = None
    min_cuda: float | None = None
    verified: bool = False

    def refinements(self) -> Q:
        """The filters that are not facets: search, minimums, the price ceiling."""
        q = Q()
        if self.q:
            q &= Q(name__icontains=self.q)
        if self.min_vram is not None:
            q &= Q(vram_gb__gte=self.min_vram - VRAM_SLACK_GB)
        if self.max_price is not None:
            q &= Q(unit_price__lte=self.max_price)
        if self.min_context is not None:
            q &= Q(context_length__gte=self.min_context)
        return q & self.renter_refinements()

    def renter_refinements(self) -> Q:
        q = Q()
        if self.rent:
            q &= Q(interruptible=self.rent == "interruptible")
        if self.min_reliability is not None:
            q &= Q(reliability__gte=self.min_reliability)
        if self.countries:
            q &= Q(country__in=self.countries)
        if self.min_disk is not None:
            q &= Q(disk_gb__gte=self.min_disk)
        if self.min_gpus is not None:
            q &= Q(gpu_count__gte=self.min_gpus)
        if self.min_cuda is not None:
            q &= Q(cuda_version__gte=self.min_cuda)
        if self.verified:
            q &= Q(verified=True)
        return q

    def shape(self) -> str:
        """What these criteria ask, as text: equal for equal criteria."""
        selected = {column: sorted(map(str, chosen)) for column, chosen in self.selected.items()}
        return repr((selected, replace(self, selected={})))

    def available(self, qs: QuerySet) -> QuerySet:
        return qs if self.unavailable else qs.filter(available=True)

    def ordering(self) -> tuple[OrderBy, str]:
        """The chosen order, then id (newest: newest id first on ties)."""
        return SORTS[self.sort].order(), "-id" if self.sort == "newest" else "id"


def catalog_rows() -> list[CatalogRow]:
    """Every combination of facet values among stored offers, with its offer count."""
    return list(map(CatalogRow._make, OfferFacet.objects.values_list(*CatalogRow._fields)))


def countries() -> list[str]:
    """The countries stored offers are in (ISO 3166 codes), for the country filter."""
    stored = Offer.objects.exclude(country="").values_list("country", flat=True)
    return sorted(stored.order_by().distinct())


def in_view(criteria: Criteria, catalog: list[CatalogRow]) -> list[CatalogRow]:
    """The catalog rows of the offers the page may list: available ones unless asked."""
    return [row for row in catalog if criteria.unavailable or row.available]


def choice(criteria: Criteria, catalog: list[CatalogRow]) -> Choice | None:
    """The combinations in view passing every facet filter; None when none is active."""
    active = [(column, chosen) for column, chosen in criteria.selected.items() if chosen]
    if not active:
        return None
    rows = [
        row
        for row in in_view(criteria, catalog)
        if all(getattr(row, column) in chosen for column, chosen in active)
    ]
    per_key = Counter()
    for row in rows:
        per_key[row.key] += row.offers
    return Choice(set(per_key), sum(per_key.values()), per_key)


def refined(criteria: Criteria) -> QuerySet[Offer]:
    qs = Offer.objects.annotate(unit_price=UNIT_PRICE).filter(criteria.refinements())
    return criteria.available(qs)


def offers(criteria: Criteria, chosen: Choice | None) -> QuerySet[Offer]:
    """Every matching offer in the chosen order."""
    qs = refined(criteria)
    if chosen is not None:
        qs = qs.filter(AnyOf(F("facet_key"), sorted(chosen.keys)))
    return qs.order_by(*criteria.ordering())


def page_of_offers(
    criteria: Criteria,
    catalog: list[CatalogRow],
    offset: int,
    keep: Callable[[Any, Callable[[], Any]], Any] | None = None,
) -> list[dict[str, Any]]:
    """The PAGE_SIZE matching offers from `offset` as rows, in one query: their ids first
    (`page_ids`), then those rows. Off PostgreSQL a row is every column a card shows
    (CARD_FIELDS); on PostgreSQL it is `id`, `provider_id`, `deprecated_at` and `doc`, those
    columns as one JSON text (`ROW_DOC`): a page whose cards are cached reads no more of them
    (describing and converting some fifty columns of 24 rows was half a warm page's Python),
    and the cards that are not parse theirs (marketplace.cards).

    `keep(key, build)`: where the query's SQL is kept while `catalog` is current
    (`snapshot.Snapshot.keep`): compiling it cost more Python than running it, and its
    rows are read as tuples, not model instances, for the same reason.
    """

    def compiled() -> sql.Prepared:
        matching = Offer.objects.filter(pk__in=page_ids(criteria, catalog, offset))
        if connection.vendor == "postgresql":
            matching = matching.values("id", "provider_id", "deprecated_at", doc=ROW_DOC)
        else:
            matching = matching.values(*CARD_FIELDS)
        return sql.prepare(matching.order_by(*criteria.ordering()))

    return sql.rows(keep(("page", criteria.shape(), offset), compiled) if keep else compiled())


def page_ids(criteria: Criteria, catalog: list[CatalogRow], offset: int) -> QuerySet | RawSQL:
    """The ids of a page, found one of two ways on PostgreSQL.

    Walking the sort order's covering index (index-only), skipping non-matching entries
    until the page is full, costs about the page's end over the share of offers chosen,
    if the choice and the order are unrelated; they often are not: walking the price order
    for the H100s passes every cheaper offer of other GPU models first (~670,000 entries at
    1,000,000 offers, 240 ms). Merging each chosen facet key's first offers (`merged_ids`)
    costs what it reads, known beforehand from the catalog: per key, the page's end (or all
    its offers, if fewer) and a descent. The merge is chosen when it reads at most
    WALK_DOUBT times what the walk would if it were unrelated, and at most
    `MARKETPLACE_NARROW_CHOICE` entries: for the H100s ~1,300 entries (1.3 ms at
    1,000,000 offers); every GPU offer (190 keys) walks.
    """
    chosen = choice(criteria, catalog)
    if connection.vendor == "postgresql" and chosen is not None and chosen.offers:
        end = offset + PAGE_SIZE
        keyed = SORTS[criteria.sort].keyed
        reads = sum(min(n, end) if keyed else n for n in chosen.per_key.values())
        reads += DESCENT * len(chosen.per_key)
        walk = end * sum(row.offers for row in in_view(criteria, catalog)) / chosen.offers
        if reads <= min(settings.MARKETPLACE_NARROW_CHOICE, WALK_DOUBT * walk):
            return merged_ids(criteria, chosen, offset)
    return offers(criteria, chosen).values("pk")[offset : offset + PAGE_SIZE]


# What one key's index descent costs the merge, in index entries read; and how much worse
# than its estimate a walk is taken to be, since the estimate assumes choice and order
# unrelated.
DESCENT = 20
WALK_DOUBT = 10


def merged_ids(criteria: Criteria, chosen: Choice, offset: int) -> RawSQL:
    """A page's ids from each chosen facet key's first `offset + PAGE_SIZE` offers (one
    index range each: `offer_facet_key` for price, the (facet key, sort) indexes for the
    other orders), merged in the order."""
    sort = SORTS[criteria.sort]
    first = (
        refined(criteria)
        .filter(facet_key=RawSQL("chosen.key", ()))
        .annotate(sort_value=sort.expression)
        .order_by(*criteria.ordering())
        .values("pk", "sort_value")[: offset + PAGE_SIZE]
    )
    sql, params = first.query.sql_with_params()
    way = "DESC" if sort.descending else "ASC"
    id_way = "DESC" if criteria.sort == "newest" else "ASC"
    merged = (
        f"SELECT page.pk FROM unnest(%s::text[]) AS chosen(key) CROSS JOIN LATERAL ({sql}) page "
        f"ORDER BY page.sort_value {way} NULLS LAST, page.pk {id_way} "
        f"LIMIT {PAGE_SIZE} OFFSET {int(offset)}"
    )
    return RawSQL(merged, (sorted(chosen.keys), *params))


# What a card may show of an offer: every column but the long description.
CARD_FIELDS = tuple(
    f.attname for f in Offer._meta.concrete_fields if f.name != "description" and not f.generated
)


def _row_doc() -> RawSQL:
    """CARD_FIELDS of an offer as a JSON array in text, decimals as text (exact)."""
    by_name = {f.attname: f for f in Offer._meta.concrete_fields}
    columns = []
    for name in CARD_FIELDS:
        column = f'"{Offer._meta.db_table}"."{by_name[name].column}"'
        columns.append(f"{column}::text" if isinstance(by_name[name], DecimalField) else column)
    return RawSQL(f"json_build_array({', '.join(columns)})::text", (), output_field=TextField())


ROW_DOC = _row_doc()


def facet_counts(criteria: Criteria, catalog: list[CatalogRow]) -> tuple[dict[str, Counter], int]:
    """Per facet column, how many matching offers each value has given every other active
    filter; and how many offers match."""
    if criteria.refinements():
        combination = {row.key: row for row in catalog}
        found = Counter()
        for key, n in refined_counts(criteria, catalog):
            found[key] += n
        rows = [(combination[key], n) for key, n in found.items() if key in combination]
    else:  # the catalog already holds these counts
        rows = [(row, row.offers) for row in in_view(criteria, catalog)]
    return count_facets(rows, criteria.selected)


def refined_counts(criteria: Criteria, catalog: list[CatalogRow]) -> list[tuple[str, int]]:
    """(facet key, offers) pairs for the offers passing the refinements; a key may come
    more than once. What the roll-ups can answer they do: a VRAM minimum for combinations
    whose offers all have it or all lack it (`OfferFacet.vram_low/high`), a price ceiling
    by the whole price bands under it (`OfferPriceBand`). Only the rest is grouped here,
    offer by offer, all in one query: the offers between the last band edge and the
    ceiling, and the combinations of mixed VRAM."""
    if criteria.q or criteria.min_context is not None or criteria.renter_refinements():
        return list(grouped(refined(criteria)))
    whole, mixed = by_vram(criteria, catalog)
    pairs, parts = [], []
    if mixed:
        parts.append(grouped(refined(criteria).filter(AnyOf(F("facet_key"), sorted(mixed)))))
    ceiling = criteria.max_price
    if whole == set():  # no combination passes the VRAM minimum whole
        pass
    elif ceiling is None:
        rows = in_view(criteria, catalog)
        pairs = [(row.key, row.offers) for row in rows if whole is None or row.key in whole]
    else:
        remaining = criteria.available(Offer.objects.annotate(unit_price=UNIT_PRICE))
        bands = criteria.available(OfferPriceBand.objects.all())
        if whole is not None:
            remaining = remaining.filter(AnyOf(F("facet_key"), sorted(whole)))
            bands = bands.filter(AnyOf(F("key"), sorted(whole)))
        edge = OfferPriceBand.edge_under(ceiling)
        if edge is not None:
            remaining = remaining.filter(unit_price__gt=edge)
            bands = bands.filter(upper__lte=edge).values("key").annotate(n=Sum("offers"))
            parts.append(bands.order_by().values_list("key", "n"))
        parts.append(grouped(remaining.filter(unit_price__lte=ceiling)))
    if parts:
        pairs += parts[0].union(*parts[1:], all=True)
    return pairs


def by_vram(criteria: Criteria, catalog: list[CatalogRow]) -> tuple[set[str] | None, set[str]]:
    """Under a VRAM minimum, the facet keys in view whose offers all pass it, and those
    with offers on both sides of it; (None, none) without a minimum."""
    if criteria.min_vram is None:
        return None, set()
    floor = criteria.min_vram - VRAM_SLACK_GB
    low, high = {}, {}
    for row in in_view(criteria, catalog):
        low[row.key] = min(low.get(row.key, row.vram_low), row.vram_low)
        if row.vram_high is not None:
            high[row.key] = max(high.get(row.key, row.vram_high), row.vram_high)
    whole = {key for key, lowest in low.items() if lowest >= floor}
    mixed = {key for key, highest in high.items() if highest >= floor} - whole
    return whole, mixed


def grouped(offers: QuerySet[Offer]) -> QuerySet:
    """(facet key, offers) for each facet key among `offers`."""
    return (
        offers.values("facet_key").annotate(n=Count("*")).order_by().values_list("facet_key", "n")
    )


def count_facets(
    rows: Iterable[tuple[CatalogRow, int]], selected: dict[str, set]
) -> tuple[dict[str, Counter], int]:
    """Per facet column, offers per value from (combination, offers) rows, and the total.
    A row counts toward facet F when it passes every active filter except F's own."""
    counts = {column: Counter() for column in FACET_COLUMNS}
    active = [(column, chosen) for column, chosen in selected.items() if chosen]
    total = 0
    for row, n in rows:
        failed = [column for column, chosen in active if getattr(row, column) not in chosen]
        if not failed:
            total += n
            for column, counter in counts.items():
                counter[getattr(row, column)] += n
        elif len(failed) == 1:
            counts[failed[0]][getattr(row, failed[0])] += n
    return counts, total

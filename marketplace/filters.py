"""The marketplace's filter form and its facet counts.

Every filter is a GET parameter, so every state of the page is a shareable URL. A bad value
never fails the page: it is dropped and the page says so (`OfferFilter.ignored`).

Facet counts are disjunctive, as in any shop's sidebar: the number beside a provider is how
many offers that provider has given every *other* active filter. They come from one GROUP BY
over `Offer.facet_key` (the five facet values in one column); the per-facet sums are done here
over the combinations it returns (a few thousand at most), instead of one COUNT query per facet
over every offer. The stored combinations (`OfferFacet`, "the catalog") turn a choice of
facet values into the keys it covers, so the offers query filters on one indexed column.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.db import connection
from django.db.models import Count, F, OrderBy, Q, QuerySet, Sum, Value
from django.db.models.lookups import In

from providers.models import UNIT_PRICE, Kind, Offer, OfferFacet, OfferPriceBand, Provider

PAGE_SIZE = 24
KINDS = {"llm": Kind.LLM.value, "gpu": Kind.GPU.value}
KIND_LABELS = {"llm": "LLM inference", "gpu": "GPU compute"}


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
    zero: Any = 0  # adds nothing to the expression's values (see `order`)

    def order(self, *, indexed: bool = True) -> OrderBy:
        """The order, unknown values last. `indexed=False` writes the same order as an
        expression (value + zero) that no index matches, so PostgreSQL cannot walk a sort
        order's index for it and finds the matching rows first instead."""
        expression = self.expression if indexed else self.expression + Value(self.zero)
        return OrderBy(expression, descending=self.descending, nulls_last=True)


SORTS = {
    "price": Sort("Price, lowest first", UNIT_PRICE, descending=False),
    "throughput": Sort("Throughput, highest first", F("throughput_tps"), descending=True),
    # By the stored value, the order of the score shown (providers.gscore).
    "gscore": Sort("G-Score, highest first", F("gscore_value"), descending=True),
    "context": Sort("Context length, longest first", F("context_length"), descending=True),
    "newest": Sort("Newest first", F("first_seen"), descending=True, zero=timedelta(0)),
}
# Facet (URL parameter) → the Offer column it groups and filters by. Facet rows are tuples of
# these columns in this order, then (catalog rows only) the facet key, the VRAM range and
# `available`, then the offer count.
FACETS = {
    "kind": "kind",
    "provider": "provider_id",
    "region": "region",
    "task": "task",
    "gpu": "gpu_name",
}
COLUMN = {column: i for i, column in enumerate(FACETS.values())}
# A catalog row: the facet columns, then these, then `available` and the offer count.
KEY, VRAM_LOW, VRAM_HIGH = range(len(FACETS), len(FACETS) + 3)
FACET_LABELS = {
    "kind": "Kind",
    "provider": "Provider",
    "region": "Region",
    "task": "Task",
    "gpu": "GPU model",
}
MULTIPLE = {"provider", "region", "gpu"}
# Providers report usable memory, a little under the size a GPU is sold by (Vast.ai lists an
# H100 80GB at 81,559 MiB = 79.6 GB), so "at least 80 GB" compares in whole GB.
VRAM_SLACK_GB = 0.5


# One card per model (LLM offers) or per GPU model, or one per offer. Without a choice, LLM
# offers are grouped by model: "who serves this model cheapest" is the first question.
GROUPS = [("", "Default"), ("model", "One card per model"), ("gpu", "One card per GPU model")]
GROUPS += [("offer", "One card per offer")]


class Flag(forms.CheckboxInput):
    """A ticked box sends "1"; a URL written by hand may say 0, false, off or no."""

    def value_from_datadict(self, data, files, name: str) -> bool:
        return data.get(name, "").strip().lower() not in {"", "0", "false", "off", "no"}


class OfferFilter(forms.Form):
    """The marketplace's GET form. Choices of provider, region, task and GPU model come from
    the database: `providers`, and `catalog`, the facet rows of every stored offer."""

    q = forms.CharField(required=False, max_length=100, label="Search")
    kind = forms.ChoiceField(required=False, choices=[("", "Any"), *KIND_LABELS.items()])
    provider = forms.MultipleChoiceField(required=False)
    region = forms.MultipleChoiceField(required=False)
    task = forms.ChoiceField(required=False)
    gpu = forms.MultipleChoiceField(required=False, label="GPU model")
    min_vram = forms.FloatField(required=False, min_value=0, max_value=10_000)
    max_price = forms.DecimalField(required=False, min_value=0, max_digits=14, decimal_places=6)
    min_context = forms.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    sort = forms.ChoiceField(required=False, choices=[(k, v.label) for k, v in SORTS.items()])
    unavailable = forms.BooleanField(required=False, widget=Flag, label="Show unavailable offers")
    page = forms.IntegerField(required=False, min_value=1)
    group = forms.ChoiceField(required=False, choices=GROUPS, label="Show")

    def __init__(self, data, *, providers: list[Provider], catalog: list[tuple]):
        super().__init__(data)
        self.providers = providers
        self.catalog = catalog
        self.fields["provider"].choices = [(p.slug, p.name) for p in providers]
        for name in ("region", "task", "gpu"):
            values = {row[COLUMN[FACETS[name]]] for row in catalog} - {""}
            choices = [(v, v) for v in sorted(values, key=str.lower)]
            self.fields[name].choices = [("", "Any"), *choices] if name == "task" else choices

    # --- reading the request -------------------------------------------------------------
    @cached_property
    def values(self) -> dict[str, Any]:
        """Cleaned values, with each invalid one dropped (for a multiple choice, only the
        unknown items), so one bad parameter does not cost the user the rest."""
        self.is_valid()
        values = {name: self.cleaned_data.get(name) for name in self.fields}
        self.ignored: list[str] = []
        for name in self.errors:
            raw = self.data.getlist(name)
            if name in MULTIPLE:
                known = {v for v, _ in self.fields[name].choices}
                values[name] = [v for v in raw if v in known]
                raw = [v for v in raw if v not in known]
            self.ignored += [f"{name}={printable(v)[:40]}" for v in raw]
        for name in MULTIPLE:
            values[name] = values[name] or []
        values["sort"] = values["sort"] or "price"
        return values

    @property
    def has_filters(self) -> bool:
        skip = ("sort", "page", "group")
        return any(
            self.values[n] not in (None, "", [], False) for n in self.fields if n not in skip
        )

    @property
    def grouping(self) -> str:
        """model, gpu or offer: what one card stands for."""
        return self.values["group"] or ("model" if self.values["kind"] == "llm" else "offer")

    @property
    def price_unit(self) -> str:
        return {"llm": "USD per 1M input tokens or per image", "gpu": "USD per GPU-hour"}.get(
            self.values["kind"], "USD per 1M input tokens, per image or per GPU-hour"
        )

    def selected(self) -> dict[str, set]:
        """Per facet column, the stored values chosen (an empty set: no filter)."""
        slugs = set(self.values["provider"])
        chosen = {
            "kind": {KINDS[self.values["kind"]]} if self.values["kind"] else set(),
            "provider_id": {p.pk for p in self.providers if p.slug in slugs},
            "region": set(self.values["region"]),
            "task": {self.values["task"]} if self.values["task"] else set(),
            "gpu_name": set(self.values["gpu"]),
        }
        return chosen

    def refinements(self) -> Q:
        """The filters that are not facets: search, minimums, the price ceiling."""
        v, q = self.values, Q()
        if v["q"]:
            q &= Q(name__icontains=v["q"])
        if v["min_vram"] is not None:
            q &= Q(vram_gb__gte=v["min_vram"] - VRAM_SLACK_GB)
        if v["max_price"] is not None:
            q &= Q(unit_price__lte=v["max_price"])
        if v["min_context"] is not None:
            q &= Q(context_length__gte=v["min_context"])
        return q

    # --- querying -----------------------------------------------------------------------
    def _refined(self) -> QuerySet[Offer]:
        qs = Offer.objects.annotate(unit_price=UNIT_PRICE).filter(self.refinements())
        return self._available(qs)

    def _in_view(self) -> list[tuple]:
        """The catalog rows of the offers the page may list: available ones unless asked."""
        return [row for row in self.catalog if self.values["unavailable"] or row[-2]]

    @cached_property
    def choice(self) -> tuple[set[str], int] | None:
        """The facet keys of the stored combinations that pass every facet filter, and how
        many offers in view they hold; None when no facet is filtered on."""
        active = [(COLUMN[column], chosen) for column, chosen in self.selected().items() if chosen]
        if not active:
            return None
        rows = [r for r in self._in_view() if all(r[i] in chosen for i, chosen in active)]
        return {row[KEY] for row in rows}, sum(row[-1] for row in rows)

    def offers(self, *, indexed: bool = True) -> QuerySet[Offer]:
        """Every matching offer in the chosen order (newest: newest id first on ties)."""
        qs = self._refined()
        if self.choice is not None:
            qs = qs.filter(AnyOf(F("facet_key"), sorted(self.choice[0])))
        return qs.order_by(SORTS[self.values["sort"]].order(indexed=indexed), self._tie)

    @property
    def _tie(self) -> str:
        return "-id" if self.values["sort"] == "newest" else "id"

    def page_of_offers(self, page: Page) -> list[Offer]:
        """One page, in one query: the page's ids first, then those rows.

        On PostgreSQL the ids come one of two ways. A broad choice walks the sort order's
        covering index (index-only), skipping non-matching entries, and stops after the page.
        A narrow one (`MARKETPLACE_NARROW_CHOICE`) finds its offers through `offer_facet_key`
        and sorts them: walking would skip every cheaper offer of other GPU models first
        (~69,000 entries before the first H100 at 100,000 offers), which the planner,
        counting on prices and models being unrelated, does not foresee.
        """
        narrow = self.choice is not None and self.choice[1] <= settings.MARKETPLACE_NARROW_CHOICE
        indexed = connection.vendor != "postgresql" or not narrow
        ids = self.offers(indexed=indexed).values("pk")[page.offset : page.offset + PAGE_SIZE]
        sort = self.values["sort"]
        matching = Offer.objects.annotate(unit_price=UNIT_PRICE).filter(pk__in=ids)
        offers = list(matching.defer("description").order_by(SORTS[sort].order(), self._tie))
        by_pk = {p.pk: p for p in self.providers}
        for offer in offers:
            offer.provider = by_pk[offer.provider_id]  # loaded already, with their status
        return offers

    def facets(self) -> tuple[list[Facet], int]:
        """Each facet with its options and their counts, and the number of matching offers."""
        if self.refinements():
            combination = {row[KEY]: row[:KEY] for row in self.catalog}
            offers = Counter()
            for key, n in self._refined_counts():
                offers[key] += n
            rows = [(*combination[k], n) for k, n in offers.items() if k in combination]
        else:  # the catalog already holds these counts
            rows = self._in_view()
        selected = self.selected()
        counts, total = count_facets(rows, selected)
        facets = []
        for name, column in FACETS.items():
            facet = Facet(name, FACET_LABELS[name], multiple=name in MULTIPLE)
            for value, label, stored in self._options(name):
                facet.options.append(
                    Option(
                        value=value,
                        label=label,
                        count=counts[column][stored],
                        checked=stored in selected[column],
                        dom_id=dom_id(name, value),
                    )
                )
            facets.append(facet)
        return facets, total

    def _refined_counts(self) -> list[tuple[str, int]]:
        """(facet key, offers) pairs for the offers passing the refinements; a key may come
        more than once. What the roll-ups can answer they do: a VRAM minimum for combinations
        whose offers all have it or all lack it (`OfferFacet.vram_low/high`), a price ceiling
        by the whole price bands under it (`OfferPriceBand`). Only the rest is grouped here,
        offer by offer, all in one query: the offers between the last band edge and the
        ceiling, and the combinations of mixed VRAM."""
        v = self.values
        if v["q"] or v["min_context"] is not None:
            return list(grouped(self._refined()))
        whole, mixed = self._by_vram()
        pairs, parts = [], []
        if mixed:
            parts.append(grouped(self._refined().filter(AnyOf(F("facet_key"), sorted(mixed)))))
        ceiling = v["max_price"]
        if whole == set():  # no combination passes the VRAM minimum whole
            pass
        elif ceiling is None:
            pairs = [(r[KEY], r[-1]) for r in self._in_view() if whole is None or r[KEY] in whole]
        else:
            offers = self._available(Offer.objects.annotate(unit_price=UNIT_PRICE))
            bands = self._available(OfferPriceBand.objects.all())
            if whole is not None:
                offers = offers.filter(AnyOf(F("facet_key"), sorted(whole)))
                bands = bands.filter(AnyOf(F("key"), sorted(whole)))
            edge = OfferPriceBand.edge_under(ceiling)
            if edge is not None:
                offers = offers.filter(unit_price__gt=edge)
                bands = bands.filter(upper__lte=edge).values("key").annotate(n=Sum("offers"))
                parts.append(bands.order_by().values_list("key", "n"))
            parts.append(grouped(offers.filter(unit_price__lte=ceiling)))
        if parts:
            pairs += parts[0].union(*parts[1:], all=True)
        return pairs

    def _by_vram(self) -> tuple[set[str] | None, set[str]]:
        """Under a VRAM minimum, the facet keys in view whose offers all pass it, and those
        with offers on both sides of it; (None, none) without a minimum."""
        if self.values["min_vram"] is None:
            return None, set()
        floor = self.values["min_vram"] - VRAM_SLACK_GB
        low, high = {}, {}
        for row in self._in_view():
            key, row_low, row_high = row[KEY], row[VRAM_LOW], row[VRAM_HIGH]
            low[key] = min(low.get(key, row_low), row_low)
            if row_high is not None:
                high[key] = max(high.get(key, row_high), row_high)
        whole = {key for key, lowest in low.items() if lowest >= floor}
        mixed = {key for key, highest in high.items() if highest >= floor} - whole
        return whole, mixed

    def _available(self, qs: QuerySet) -> QuerySet:
        return qs if self.values["unavailable"] else qs.filter(available=True)

    def _options(self, name: str) -> list[tuple[str, str, Any]]:
        """(URL value, label, stored value) for each option of a facet."""
        if name == "kind":
            return [(k, label, KINDS[k]) for k, label in KIND_LABELS.items()]
        if name == "provider":
            return [(p.slug, p.name, p.pk) for p in self.providers]
        return [(v, label, v) for v, label in self.fields[name].choices if v]

    def querystring(self, **overrides) -> str:
        """The canonical query for this state: valid, non-default values only."""
        values = {**self.values, **overrides}
        pairs = []
        for name in self.fields:
            value = values.get(name)
            if value in (None, "", [], False) or (name, value) in (("sort", "price"), ("page", 1)):
                continue
            for item in value if isinstance(value, list) else [value]:
                pairs.append((name, _plain(item)))
        return urlencode(pairs)


class Page:
    """Which slice of the matches to show; a page past the end shows the last one, and says so."""

    def __init__(self, form: OfferFilter, total: int):
        self.count = max(1, -(-total // PAGE_SIZE))
        asked = form.values["page"] or 1
        self.number = min(asked, self.count)
        self.note = (
            f"There is no page {asked}; showing page {self.number} of {self.count}."
            if asked > self.count
            else ""
        )
        self.offset = (self.number - 1) * PAGE_SIZE
        self.previous = form.querystring(page=self.number - 1) if self.number > 1 else None
        self.next = form.querystring(page=self.number + 1) if self.number < self.count else None


@dataclass
class Option:
    value: str
    label: str
    count: int
    checked: bool
    dom_id: str


@dataclass
class Facet:
    name: str
    label: str
    multiple: bool
    options: list[Option] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return any(o.checked for o in self.options)

    @property
    def open(self) -> bool:
        """Shown unfolded: when in use, and always for the two short, first-asked ones."""
        return self.active or self.name in ("kind", "provider")


def catalog_rows() -> list[tuple]:
    """Every combination of facet values among stored offers, with its offer count."""
    rows = OfferFacet.objects.values_list(
        *FACETS.values(), "key", "vram_low", "vram_high", "available", "offers"
    )
    return list(rows)


def grouped(offers: QuerySet[Offer]) -> QuerySet:
    """(facet key, offers) for each facet key among `offers`."""
    return (
        offers.values("facet_key").annotate(n=Count("*")).order_by().values_list("facet_key", "n")
    )


def count_facets(rows: list[tuple], selected: dict[str, set]) -> tuple[dict[str, Counter], int]:
    """A row counts toward facet F when it passes every active filter except F's own."""
    counts = [Counter() for _ in FACETS]
    active = [(COLUMN[column], chosen) for column, chosen in selected.items() if chosen]
    total = 0
    for row in rows:
        n = row[-1]
        failed = [i for i, chosen in active if row[i] not in chosen]
        if not failed:
            total += n
            for i, counter in enumerate(counts):
                counter[row[i]] += n
        elif len(failed) == 1:
            counts[failed[0]][row[failed[0]]] += n
    return {column: counts[i] for column, i in COLUMN.items()}, total


def dom_id(facet: str, value: str) -> str:
    """A stable element id for an option's count, whatever characters the value holds."""
    return f"n-{facet}-{hashlib.blake2s(value.encode(), digest_size=5).hexdigest()}"


def printable(value: str) -> str:
    """A value as it can be shown back: control characters (a NUL from %00) spelt out."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in value)


def _plain(value: Any) -> str:
    if value is True:
        return "1"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)

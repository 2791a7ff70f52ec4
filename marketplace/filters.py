"""The marketplace's filter form.

Every filter is a GET parameter, so every state of the page is a shareable URL. A bad value
never fails the page: it is dropped and the page says so (`OfferFilter.ignored`). The form
turns the URL into `search.Criteria`, what the queries in marketplace.search take, and lays
out the facets' options with the counts those queries give.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.utils.safestring import SafeString, mark_safe

from marketplace.search import PAGE_SIZE, SORTS, CatalogRow, Criteria
from providers.models import Kind, Provider

KINDS = {"llm": Kind.LLM.value, "gpu": Kind.GPU.value}
KIND_LABELS = {"llm": "LLM inference", "gpu": "GPU compute"}
# Facet (URL parameter) → the Offer column it groups and filters by (search.FACET_COLUMNS).
FACETS = {
    "kind": "kind",
    "provider": "provider_id",
    "region": "region",
    "task": "task",
    "gpu": "gpu_name",
}
FACET_LABELS = {
    "kind": "Kind",
    "provider": "Provider",
    "region": "Region",
    "task": "Task",
    "gpu": "GPU model",
}
MULTIPLE = {"provider", "region", "gpu", "country"}
RENT_TYPES = {"on-demand": "On-demand", "interruptible": "Interruptible (bid)"}
# Filters that only LLM offers or only GPU offers can pass, with how the page names them.
LLM_ONLY = {"task": "Task", "min_context": "Min context length"}
GPU_ONLY = {
    "gpu": "GPU model",
    "min_vram": "Min VRAM",
    "rent": "Rental type",
    "min_reliability": "Min reliability",
    "min_disk": "Min disk",
    "min_gpus": "Min GPUs",
    "min_cuda": "Min CUDA version",
    "verified": "Verified hosts",
}
# The region filter's value for offers whose provider states no region (stored as ""): LLM
# APIs that say nothing of where they serve, GPU hosts with no location.
UNSPECIFIED = "unspecified"


# One card per model (LLM offers) or per GPU model, or one per offer. Without a choice, LLM
# offers are grouped by model: "who serves this model cheapest" is the first question.
GROUPS = [("", "Default"), ("model", "One card per model"), ("gpu", "One card per GPU model")]
GROUPS += [("offer", "One card per offer")]
VIEWS = [("cards", "Cards"), ("table", "Table")]


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
    # What renters filter GPU offers by; each only on a field the providers' payloads carry.
    rent = forms.ChoiceField(required=False, choices=[("", "Any"), *RENT_TYPES.items()])
    min_reliability = forms.FloatField(required=False, min_value=0, max_value=100)
    country = forms.MultipleChoiceField(required=False)
    min_disk = forms.FloatField(required=False, min_value=0, max_value=10_000_000)
    min_gpus = forms.IntegerField(required=False, min_value=1, max_value=1024)
    min_cuda = forms.FloatField(required=False, min_value=0, max_value=100)
    verified = forms.BooleanField(required=False, widget=Flag, label="Verified hosts only")
    view = forms.ChoiceField(required=False, choices=VIEWS)
    sort = forms.ChoiceField(required=False, choices=[(k, v.label) for k, v in SORTS.items()])
    unavailable = forms.BooleanField(required=False, widget=Flag, label="Show unavailable offers")
    page = forms.IntegerField(required=False, min_value=1)
    group = forms.ChoiceField(required=False, choices=GROUPS, label="Show")

    def __init__(
        self,
        data,
        *,
        providers: list[Provider],
        catalog: list[CatalogRow],
        countries: list[str] = (),
    ):
        super().__init__(data)
        self.providers = providers
        self.fields["provider"].choices = [(p.slug, p.name) for p in providers]
        self.fields["country"].choices = [(c, c) for c in countries]
        for name in ("region", "task", "gpu"):
            values = {getattr(row, FACETS[name]) for row in catalog}
            choices = [(v, v) for v in sorted(values - {""}, key=str.lower)]
            if name == "region" and "" in values:
                choices.append((UNSPECIFIED, UNSPECIFIED))
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
        values["view"] = values["view"] or "cards"
        return values

    @property
    def has_filters(self) -> bool:
        skip = ("sort", "page", "view", "group")
        return any(
            self.values[n] not in (None, "", [], False) for n in self.fields if n not in skip
        )

    @property
    def mixes_units(self) -> bool:
        """Sorted by price across units that do not compare (per 1M tokens, per image, per
        GPU-hour): the page says so, and how to compare like with like."""
        return self.values["sort"] == "price" and self.values["kind"] != "gpu"

    @property
    def grouping(self) -> str:
        """model, gpu or offer: what one card stands for. LLM offers group by model unless
        the visitor asked for the table or for an order of offers (a sort)."""
        if self.values["group"]:
            return self.values["group"]
        asked_for_offers = self.values["view"] == "table" or "sort" in self.data
        return "model" if self.values["kind"] == "llm" and not asked_for_offers else "offer"

    @property
    def price_unit(self) -> str:
        return {"llm": "USD per 1M input tokens or per image", "gpu": "USD per GPU-hour"}.get(
            self.values["kind"], "USD per 1M input tokens, per image or per GPU-hour"
        )

    def selected(self) -> dict[str, set]:
        """Per facet column, the stored values chosen (an empty set: no filter)."""
        slugs = set(self.values["provider"])
        return {
            "kind": {KINDS[self.values["kind"]]} if self.values["kind"] else set(),
            "provider_id": {p.pk for p in self.providers if p.slug in slugs},
            "region": {_stored_region(v) for v in self.values["region"]},
            "task": {self.values["task"]} if self.values["task"] else set(),
            "gpu_name": set(self.values["gpu"]),
        }

    @cached_property
    def criteria(self) -> Criteria:
        """What the marketplace's queries (marketplace.search) are to find."""
        v = self.values
        return Criteria(
            selected=self.selected(),
            q=v["q"],
            min_vram=v["min_vram"],
            max_price=v["max_price"],
            min_context=v["min_context"],
            unavailable=v["unavailable"],
            sort=v["sort"],
            rent=v["rent"] or "",
            min_reliability=None if v["min_reliability"] is None else v["min_reliability"] / 100,
            countries=tuple(v["country"]),
            min_disk=v["min_disk"],
            min_gpus=v["min_gpus"],
            min_cuda=v["min_cuda"],
            verified=bool(v["verified"]),
        )

    def contradiction(self) -> str:
        """Why no offer can ever match, when filters for LLM offers only and for GPU offers
        only (or the other kind) are combined; "" otherwise."""
        v = self.values
        llm = [label for name, label in LLM_ONLY.items() if _in_use(v[name])]
        gpu = [label for name, label in GPU_ONLY.items() if _in_use(v[name])]
        if v["kind"] == "llm" and gpu:
            return f"{_and(gpu)} only matches GPU offers, and Kind is “LLM inference”."
        if v["kind"] == "gpu" and llm:
            return f"{_and(llm)} only matches LLM offers, and Kind is “GPU compute”."
        if llm and gpu:
            return f"{_and(llm)} only matches LLM offers, and {_and(gpu)} only GPU offers."
        return ""

    # --- writing the page ---------------------------------------------------------------
    def facets(self, counts: dict[str, Counter]) -> list[Facet]:
        """Each facet with its options, given per facet column the offers of each value."""
        selected = self.criteria.selected
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
        return facets

    def _options(self, name: str) -> list[tuple[str, str, Any]]:
        """(URL value, label, stored value) for each option of a facet."""
        if name == "kind":
            return [(k, label, KINDS[k]) for k, label in KIND_LABELS.items()]
        if name == "provider":
            return [(p.slug, p.name, p.pk) for p in self.providers]
        if name == "region":
            return [(v, label, _stored_region(v)) for v, label in self.fields[name].choices]
        return [(v, label, v) for v, label in self.fields[name].choices if v]

    def querystring(self, **overrides) -> str:
        """The canonical query for this state: valid, non-default values only."""
        values = {**self.values, **overrides}
        pairs = []
        for name in self.fields:
            value = values.get(name)
            defaults = (("sort", "price"), ("page", 1), ("view", "cards"))
            if value in (None, "", [], False) or (name, value) in defaults:
                continue
            for item in value if isinstance(value, list) else [value]:
                pairs.append((name, _plain(item)))
        return urlencode(pairs)


def count_swaps(facets: list[Facet]) -> SafeString:
    """Every option's count as an out-of-band swap, for a fragment to update the filters'.
    Written without escaping: an id is hex digits (`dom_id`), a count digits and commas."""
    return mark_safe(
        "".join(
            f'<span class="n" id="{option.dom_id}" hx-swap-oob="true">{option.count:,}</span>'
            for facet in facets
            for option in facet.options
        )
    )


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


def _stored_region(value: str) -> str:
    return "" if value == UNSPECIFIED else value


def dom_id(facet: str, value: str) -> str:
    """A stable element id for an option's count, whatever characters the value holds."""
    return f"n-{facet}-{hashlib.blake2s(value.encode(), digest_size=5).hexdigest()}"


def printable(value: str) -> str:
    """A value as it can be shown back: control characters (a NUL from %00) spelt out."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in value)


def _in_use(value: Any) -> bool:
    return value not in (None, "", [], False)


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _plain(value: Any) -> str:
    if value is True:
        return "1"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# The table's columns: (id, sort key or None, header). A sortable header links to its sort;
# a column only one kind of offer fills is left out when the other kind is chosen.
COLUMNS = [
    ("offer", None, "Offer"),
    ("provider", None, "Provider"),
    ("price", "price", "Price"),
    ("output", "output", "Output /1M"),
    ("context", "context", "Context"),
    ("throughput", "throughput", "Throughput"),
    ("vram", None, "VRAM"),
    ("vram_price", "vram_price", "Per VRAM-GB·h"),
    ("gscore", "gscore", "G-Score"),
    ("region", None, "Region"),
    ("reliability", None, "Reliability"),
    ("type", None, "Type"),
    ("updated", None, "Updated"),
]
ONLY_FOR = {
    "llm": {"vram", "vram_price", "gscore", "reliability", "type"},
    "gpu": {"output", "context", "throughput"},
}


def table_links(form: OfferFilter, page: Page) -> dict:
    """Links for the Cards/Table switch and the table's columns with their sort links."""
    views = [(v, label, form.querystring(view=v, page=page.number)) for v, label in VIEWS]
    hidden = ONLY_FOR.get(form.values["kind"], set())
    columns = [
        (key, label, None if key is None else form.querystring(sort=key, page=1))
        for column, key, label in COLUMNS
        if column not in hidden
    ]
    return {
        "view_links": views,
        "sort_columns": columns,
        "shown": {column for column, _, _ in COLUMNS} - hidden,
        "sort_directions": {
            k: "descending" if s.descending else "ascending" for k, s in SORTS.items()
        },
        "sort_arrows": {k: "↓" if s.descending else "↑" for k, s in SORTS.items()},
    }

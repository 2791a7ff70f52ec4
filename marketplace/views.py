from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import get_template
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import push_url

from marketplace import cards, catalog, compare, history, search, snapshot, status
from marketplace.filters import OfferFilter, Page, count_swaps
from marketplace.search import PAGE_SIZE, SORTS, CatalogRow
from providers import gscore, llm_models
from providers.adapters.base import PRICE_FIELDS
from providers.models import GpuModel, Kind, ModelAlias, Offer, PriceChange

VIEWS = [("cards", "Cards"), ("table", "Table")]
# The filter form alone: the same for every request of one query between two polls.
FILTERS = "marketplace/index.html#filter-form"
# What a fragment updates beside the results (the filters' counts, the sort): likewise.
OUT_OF_BAND = "marketplace/index.html#out-of-band"


@vary_on_headers("HX-Request")
def index(request: HttpRequest) -> TemplateResponse:
    stored = snapshot.snapshot()
    providers, catalog_rows = stored.providers, stored.catalog
    # Between two polls the same query has the same form and counts: kept with the snapshot.
    query = request.GET.urlencode()
    form = stored.keep(
        ("form", query),
        lambda: OfferFilter(
            request.GET, providers=providers, catalog=catalog_rows, countries=stored.countries
        ),
    )
    counts, total = stored.keep(
        ("counts", form.criteria.shape()), lambda: search.facet_counts(form.criteria, catalog_rows)
    )
    groups, offers, shown = None, [], []
    if form.grouping == "offer":
        page = Page(form, total)
        rows = search.page_of_offers(form.criteria, catalog_rows, page.offset, stored.keep)
        shown = cards.cards(rows, providers)
        if form.values["view"] == "table":
            offers = cards.instances(rows, providers)
    else:  # one card per model or GPU model, each opening onto its offers
        groups, page = stored.keep(("groups", query), lambda: grouped(form, catalog_rows))
    notices, live = status.notices(providers, chosen=form.values["provider"])
    fragment = bool(request.htmx) and not request.htmx.history_restore_request
    facets = stored.keep(("facets", query), lambda: form.facets(counts))
    context = {
        "form": form,
        "facets": facets,
        "count_swaps": fragment and stored.keep(("swaps", query), lambda: count_swaps(facets)),
        "total": total,
        "page": page,
        "groups": groups,
        "ungrouped": form.querystring(group="offer", page=None),
        "offers": offers or shown,  # model instances in the table view
        "card_items": cards.items(shown),
        "notices": notices,
        "live_stats_unavailable": not live,
        "fragment": fragment,
        "contradiction": form.contradiction(),
        **stored.keep(("table", query, page.number), lambda: table_context(form, page)),
        "gscore_explanation": gscore.EXPLANATION,
    }
    if not fragment:
        context["filter_form"] = stored.keep(
            ("filters", query), lambda: get_template(FILTERS).render(context, request)
        )
        return TemplateResponse(request, "marketplace/index.html", context)
    context["out_of_band"] = stored.keep(
        ("out-of-band", query), lambda: get_template(OUT_OF_BAND).render(context, request)
    )
    response = TemplateResponse(request, "marketplace/index.html#results", context)
    pushed = form.querystring(page=page.number)
    return push_url(response, f"{request.path}?{pushed}" if pushed else request.path)


def grouped(form: OfferFilter, catalog_rows: list[CatalogRow]) -> tuple[list[dict], Page]:
    """A page of groups and the Page: an aggregate over every matching offer (~280 ms of SQL
    for all LLM offers at 100,000), so the view keeps it with the snapshot until the next poll."""
    matching = search.offers(form.criteria, search.choice(form.criteria, catalog_rows))
    page_number = (form.values["page"] or 1) - 1
    groups, count = compare.groups(matching, form.grouping, page_number * PAGE_SIZE, PAGE_SIZE)
    page = Page(form, count)
    if page.number - 1 != page_number:  # asked past the end: the last page
        groups, _ = compare.groups(matching, form.grouping, page.offset, PAGE_SIZE)
    return groups, page


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


def table_context(form: OfferFilter, page: Page) -> dict:
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


def offer_detail(request: HttpRequest, pk: int) -> TemplateResponse:
    offer = get_object_or_404(Offer.objects.select_related("provider", "gpu", "llm_model"), pk=pk)
    changes = list(PriceChange.objects.filter(offer=offer).order_by("at", "id"))
    now = timezone.now()
    lines = [history.sparkline(offer, changes, now, field, complete=True) for field in PRICE_FIELDS]
    context = {
        "offer": offer,
        "changes": changes,
        "sparklines": [line for line in lines if line],
        "priced": any(getattr(offer, field) is not None for field in PRICE_FIELDS),
        "gscore_explanation": gscore.EXPLANATION,  # the card's G-Score tooltip
    }
    return TemplateResponse(request, "marketplace/offer.html", context)


@vary_on_headers("HX-Request")
def model_detail(request: HttpRequest, canonical: str) -> HttpResponse:
    """Every offer of one model side by side, cheapest healthy first, with price history.
    Any name the catalog resolves (an alias, a provider's own id) leads to the model's page."""
    model = llm_models.resolve(canonical)
    if model is None:
        raise Http404("No model of that name.")
    if model.canonical != canonical.lower():
        return redirect("marketplace:model", model.canonical)
    offers = compare.ranked(model.offers.all(), catalog.providers())
    context = {
        "model": model,
        "offers": offers,
        "summary": compare.summary(offers),
        "chart": None if request.htmx else compare.history_chart(offers),
        "aliases": ModelAlias.objects.filter(model__iexact=model.canonical).select_related(
            "provider"
        ),
    }
    template = "marketplace/model.html#offers-table" if request.htmx else "marketplace/model.html"
    return TemplateResponse(request, template, context)


@vary_on_headers("HX-Request")
def gpu_detail(request: HttpRequest, name: str) -> TemplateResponse:
    """Every offer of one GPU model side by side, with the price spread per provider and
    G-Score against price. `name` is the vocabulary's name, or a provider's spelling kept."""
    gpu = GpuModel.objects.filter(canonical=name).first()
    offers = compare.ranked(Offer.objects.filter(kind=Kind.GPU, gpu_name=name), catalog.providers())
    if gpu is None and not offers:
        raise Http404("No GPU of that name.")
    spread, scatter = (None, None) if request.htmx else compare.gpu_charts(offers)
    context = {
        "name": name,
        "gpu": gpu,
        "offers": offers,
        "summary": compare.summary(offers),
        "spread": spread,
        "scatter": scatter,
        "gscore_explanation": gscore.EXPLANATION,
    }
    template = "marketplace/gpu.html#offers-table" if request.htmx else "marketplace/gpu.html"
    return TemplateResponse(request, template, context)

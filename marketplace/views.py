from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import push_url

from marketplace import catalog, compare, history, search, status
from marketplace.filters import OfferFilter, Page
from marketplace.search import PAGE_SIZE, SORTS
from providers import gscore, llm_models
from providers.adapters.base import PRICE_FIELDS
from providers.models import GpuModel, Kind, ModelAlias, Offer, PriceChange

VIEWS = [("cards", "Cards"), ("table", "Table")]


@vary_on_headers("HX-Request")
def index(request: HttpRequest) -> TemplateResponse:
    providers = list(status.providers_with_status())
    catalog_rows = search.catalog_rows()
    form = OfferFilter(
        request.GET, providers=providers, catalog=catalog_rows, countries=search.countries()
    )
    counts, total = search.facet_counts(form.criteria, catalog_rows)
    groups = None
    if form.grouping == "offer":
        page = Page(form, total)
        offers = search.page_of_offers(form.criteria, catalog_rows, page.offset, providers)
        offers = history.with_sparklines(offers)
    else:  # one card per model or GPU model, each opening onto its offers
        matching = search.offers(form.criteria, search.choice(form.criteria, catalog_rows))
        page_number = (form.values["page"] or 1) - 1
        groups, count = compare.groups(matching, form.grouping, page_number * PAGE_SIZE, PAGE_SIZE)
        page = Page(form, count)
        if page.number - 1 != page_number:  # asked past the end: the last page
            groups, _ = compare.groups(matching, form.grouping, page.offset, PAGE_SIZE)
        offers = []
    notices, live = status.notices(providers, chosen=form.values["provider"])
    fragment = bool(request.htmx) and not request.htmx.history_restore_request
    context = {
        "form": form,
        "facets": form.facets(counts),
        "total": total,
        "page": page,
        "groups": groups,
        "ungrouped": form.querystring(group="offer", page=None),
        "offers": offers,
        "notices": notices,
        "live_stats_unavailable": not live,
        "fragment": fragment,
        "contradiction": form.contradiction(),
        **table_context(form, page),
        "gscore_explanation": gscore.EXPLANATION,
    }
    if not fragment:
        return TemplateResponse(request, "marketplace/index.html", context)
    response = TemplateResponse(request, "marketplace/index.html#results", context)
    query = form.querystring(page=page.number)
    return push_url(response, f"{request.path}?{query}" if query else request.path)


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

from __future__ import annotations

from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import push_url

from marketplace import catalog, compare, history, search, status
from marketplace.filters import OfferFilter, Page
from marketplace.search import PAGE_SIZE
from providers import gscore
from providers.adapters.base import PRICE_FIELDS
from providers.models import GpuModel, Kind, LlmModel, ModelAlias, Offer, PriceChange


@vary_on_headers("HX-Request")
def index(request: HttpRequest) -> TemplateResponse:
    providers = list(status.providers_with_status())
    catalog_rows = search.catalog_rows()
    form = OfferFilter(request.GET, providers=providers, catalog=catalog_rows)
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
    fragment = bool(request.htmx) and not request.htmx.history_restore_request
    context = {
        "form": form,
        "facets": form.facets(counts),
        "total": total,
        "page": page,
        "groups": groups,
        "ungrouped": form.querystring(group="offer", page=None),
        "offers": offers,
        "notices": status.notices(providers, chosen=form.values["provider"]),
        "fragment": fragment,
        "gscore_explanation": gscore.EXPLANATION,
    }
    if not fragment:
        return TemplateResponse(request, "marketplace/index.html", context)
    response = TemplateResponse(request, "marketplace/index.html#results", context)
    query = form.querystring(page=page.number)
    return push_url(response, f"{request.path}?{query}" if query else request.path)


def offer_detail(request: HttpRequest, pk: int) -> TemplateResponse:
    offer = get_object_or_404(Offer.objects.select_related("provider", "gpu", "llm_model"), pk=pk)
    changes = list(PriceChange.objects.filter(offer=offer).order_by("at", "id"))
    now = timezone.now()
    lines = [history.sparkline(offer, changes, now, field, complete=True) for field in PRICE_FIELDS]
    context = {
        "offer": offer,
        "changes": changes,
        "sparklines": [line for line in lines if line],
        "gscore_explanation": gscore.EXPLANATION,  # the card's G-Score tooltip
    }
    return TemplateResponse(request, "marketplace/offer.html", context)


@vary_on_headers("HX-Request")
def model_detail(request: HttpRequest, canonical: str) -> TemplateResponse:
    """Every offer of one model side by side, cheapest healthy first, with price history."""
    model = get_object_or_404(LlmModel, canonical=canonical.lower())
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

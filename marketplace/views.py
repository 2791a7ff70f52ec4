from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import push_url

from marketplace import cards, catalog, compare, history, search, snapshot, status
from providers import gscore, llm_models
from providers.adapters.base import PRICE_FIELDS
from providers.models import GpuModel, Kind, ModelAlias, Offer, PriceChange


@vary_on_headers("HX-Request")
def index(request: HttpRequest) -> HttpResponse:
    stored = snapshot.snapshot()
    listing = snapshot.listing(stored, request.GET)
    form, page = listing["form"], listing["page"]
    shown, offers = [], []
    if listing["groups"] is None:  # one card per offer
        rows = search.page_of_offers(form.criteria, stored.catalog, page.offset, stored.keep)
        shown = cards.cards(rows, stored.providers)
        if form.values["view"] == "table":
            offers = cards.instances(rows, stored.providers)
    notices, live = status.notices(stored.providers, chosen=form.values["provider"])
    context = listing | {
        "offers": offers or shown,  # model instances in the table view
        "notices": notices,
        "live_stats_unavailable": not live,
        "fragment": bool(request.htmx) and not request.htmx.history_restore_request,
    }
    context["results"] = snapshot.results(stored, context, shown, request)
    if not context["fragment"]:
        context["filter_form"] = snapshot.filter_form(stored, context, request)
        return TemplateResponse(request, snapshot.PAGE, context)
    pushed = listing["pushed"]
    return push_url(
        HttpResponse(context["results"]), f"{request.path}?{pushed}" if pushed else request.path
    )


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

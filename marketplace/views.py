from __future__ import annotations

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import push_url

from marketplace import history, search, status
from marketplace.filters import OfferFilter, Page
from providers import gscore
from providers.adapters.base import PRICE_FIELDS
from providers.models import Offer, PriceChange


@vary_on_headers("HX-Request")
def index(request: HttpRequest) -> TemplateResponse:
    providers = list(status.providers_with_status())
    catalog = search.catalog_rows()
    form = OfferFilter(request.GET, providers=providers, catalog=catalog)
    counts, total = search.facet_counts(form.criteria, catalog)
    page = Page(form, total)
    offers = search.page_of_offers(form.criteria, catalog, page.offset, providers)
    notices, live = status.notices(providers, chosen=form.values["provider"])
    fragment = bool(request.htmx) and not request.htmx.history_restore_request
    context = {
        "form": form,
        "facets": form.facets(counts),
        "total": total,
        "page": page,
        "offers": history.with_sparklines(offers),
        "notices": notices,
        "live_stats_unavailable": not live,
        "fragment": fragment,
        "gscore_explanation": gscore.EXPLANATION,
    }
    if not fragment:
        return TemplateResponse(request, "marketplace/index.html", context)
    response = TemplateResponse(request, "marketplace/index.html#results", context)
    query = form.querystring(page=page.number)
    return push_url(response, f"{request.path}?{query}" if query else request.path)


def offer_detail(request: HttpRequest, pk: int) -> TemplateResponse:
    offer = get_object_or_404(Offer.objects.select_related("provider", "gpu"), pk=pk)
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

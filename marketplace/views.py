from __future__ import annotations

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import push_url

from marketplace import history, status
from marketplace.filters import PAGE_SIZE, OfferFilter, Page, catalog_rows
from providers.models import Offer, PriceChange


@vary_on_headers("HX-Request")
def index(request: HttpRequest) -> TemplateResponse:
    providers = list(status.providers_with_status())
    form = OfferFilter(request.GET, providers=providers, catalog=catalog_rows())
    facets, total = form.facets()
    page = Page(form, total)
    offers = list(form.offers()[page.offset : page.offset + PAGE_SIZE].defer("description"))
    changes = history.recent_changes(offers)
    now = timezone.now()
    for offer in offers:
        offer.provider = next(p for p in providers if p.pk == offer.provider_id)
        offer.sparkline = history.sparkline(offer, changes[offer.pk], now)
    context = {
        "form": form,
        "facets": facets,
        "total": total,
        "page": page,
        "offers": offers,
        "notices": status.notices(providers, chosen=form.values["provider"]),
        "now": now,
    }
    fragment = request.htmx and not request.htmx.history_restore_request
    template = "marketplace/index.html#results" if fragment else "marketplace/index.html"
    response = TemplateResponse(request, template, {**context, "fragment": fragment})
    if fragment:
        query = form.querystring(page=page.number if page.number > 1 else None)
        push_url(response, f"{request.path}?{query}" if query else request.path)
    return response


def offer_detail(request: HttpRequest, pk: int) -> TemplateResponse:
    offer = get_object_or_404(Offer.objects.select_related("provider", "gpu"), pk=pk)
    changes = list(PriceChange.objects.filter(offer=offer).order_by("at", "id"))
    now = timezone.now()
    lines = [
        history.sparkline(offer, changes, now, field, complete=True)
        for field in history.FIELD_LABELS
    ]
    for change in changes:
        change.label = history.FIELD_LABELS.get(change.field, change.field)
    context = {
        "offer": offer,
        "changes": changes,
        "sparklines": [line for line in lines if line],
    }
    return TemplateResponse(request, "marketplace/offer.html", context)

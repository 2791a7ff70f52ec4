from __future__ import annotations

from django.template.response import TemplateResponse

from providers.models import Offer, Provider


def index(request):
    offers = Offer.objects.available().select_related("provider").order_by("name")[:60]
    return TemplateResponse(
        request,
        "marketplace/index.html",
        {"offers": offers, "providers": Provider.objects.all()},
    )

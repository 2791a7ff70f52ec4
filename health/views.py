from __future__ import annotations

from django.template.response import TemplateResponse

from providers.models import Provider


def index(request):
    return TemplateResponse(request, "health/index.html", {"providers": Provider.objects.all()})

"""The broker's HTTP API: OpenAI's paths and wire format, and the seeds' /api/v1 paths.

Async views (served by uvicorn), so a stream holds no worker thread; the work is in
broker.proxy. Every refusal is in OpenAI's error shape.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from asgiref.sync import sync_to_async
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from broker import catalog, proxy, usage
from broker.routing import CHAT, EMBEDDINGS, RouteError


def only(method: str) -> Callable:
    """Django's require_http_methods, answering a wrong method in OpenAI's error shape."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        async def checked(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method != method:
                message = f"Use {method} for {request.path}, not {request.method}."
                response = proxy.error_response(405, message, "method_not_allowed")
                response["Allow"] = method
                return response
            return await view(request, *args, **kwargs)

        return checked

    return decorate


@csrf_exempt
@only("POST")
async def chat_completions(request: HttpRequest) -> HttpResponse:
    return await proxy.handle(request, CHAT)


@csrf_exempt
@only("POST")
async def embeddings(request: HttpRequest) -> HttpResponse:
    return await proxy.handle(request, EMBEDDINGS)


@csrf_exempt
@only("POST")
async def inference(request: HttpRequest) -> HttpResponse:
    """The seeds' path: a chat completion whose answer says which offer served it."""
    return await proxy.handle(request, CHAT, annotate=True)


@only("GET")
async def models(request: HttpRequest) -> HttpResponse:
    try:
        key = await sync_to_async(proxy.authenticate)(request)
    except RouteError as exc:
        return proxy.error_response(exc.status, str(exc), exc.code)
    return JsonResponse(await sync_to_async(catalog.model_list)(key))


@only("GET")
async def model(request: HttpRequest, name: str) -> HttpResponse:
    """OpenAI's retrieve-model: one entry of /v1/models, named as a request may name it."""
    try:
        key = await sync_to_async(proxy.authenticate)(request)
    except RouteError as exc:
        return proxy.error_response(exc.status, str(exc), exc.code)
    entry = await sync_to_async(catalog.model_entry)(key, name)
    if entry is None:
        message = f"The model `{name}` does not exist."
        return proxy.error_response(404, message, "model_not_found", "model")
    return JsonResponse(entry)


@csrf_exempt
@only("POST")
async def auth(request: HttpRequest) -> HttpResponse:
    """Validate a broker key: its name, budget left this month and expiry."""
    try:
        key = await sync_to_async(proxy.authenticate)(request)
    except RouteError as exc:
        return proxy.error_response(exc.status, str(exc), exc.code)
    return JsonResponse(catalog.describe_key(key))


@require_GET
@staff_member_required
def usage_page(request: HttpRequest) -> TemplateResponse:
    """Staff: spend per day (chart), per key, per model, per provider."""
    return TemplateResponse(request, "broker/usage.html", usage.summary())

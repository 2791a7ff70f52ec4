"""The JSON endpoints answer every error in JSON, never with the HTML error page."""

from __future__ import annotations

import logging

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse

from resilience.store import UNREACHABLE

logger = logging.getLogger(__name__)

# The broker's OpenAI-compatible API: errors in OpenAI's shape (broker.proxy.error_response).
OPENAI_PATHS = ("/v1/", "/api/v1/inference", "/api/v1/auth")
JSON_PATHS = ("/api/", "/metrics", "/readyz", "/healthz", *OPENAI_PATHS)


def is_json_path(path: str) -> bool:
    return path.startswith(JSON_PATHS)


def json_error(exc: BaseException | None) -> JsonResponse:
    """503 when a dependency (Postgres, Redis) failed, else 500; the body says which."""
    if isinstance(exc, UNREACHABLE):
        body = {"error": "Live stats unavailable: shared state (Redis) unreachable.", "retry": True}
        return JsonResponse(body | {"dependency": "redis"}, status=503)
    if isinstance(exc, DatabaseError):
        body = {"error": "Database unavailable.", "retry": True, "dependency": "database"}
        return JsonResponse(body, status=503)
    return JsonResponse({"error": "Internal server error."}, status=500)


class JsonErrorsMiddleware:
    # Both, so the broker's async views keep an async chain (process_exception is sync: Django
    # calls it through its adapter only when a view raised).
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self.__acall__(request)
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest):
        return await self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> JsonResponse | None:
        if not is_json_path(request.path):
            return None  # pages keep Django's handling (and the 500 page)
        logger.error("%s %s failed", request.method, request.path, exc_info=exc)
        return json_error(exc)

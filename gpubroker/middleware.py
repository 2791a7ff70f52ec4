"""The JSON endpoints answer every error in JSON, never with the HTML error page."""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse

from resilience.store import UNREACHABLE

logger = logging.getLogger(__name__)

JSON_PATHS = ("/api/", "/metrics", "/readyz", "/healthz")


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
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> JsonResponse | None:
        if not is_json_path(request.path):
            return None  # pages keep Django's handling (and the 500 page)
        logger.error("%s %s failed", request.method, request.path, exc_info=exc)
        return json_error(exc)

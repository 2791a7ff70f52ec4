"""The ASGI entry point (uvicorn). The broker's API paths skip the middleware stack.

Django runs each sync middleware of an async request in a worker thread (two hops per
middleware); sessions, CSRF, messages and clickjacking headers mean nothing to an API called
with a bearer key, and on a loaded machine those hops were most of the broker's added time.
So `/v1/…`, `/api/v1/inference` and `/api/v1/auth` go to a Django handler with no middleware
(same URLconf, same views, exceptions still turned into responses); every other path gets the
full stack.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gpubroker.settings")
# Served by uvicorn: pooled database connections (see DATABASE_POOL in settings).
os.environ.setdefault("DATABASE_POOL", "true")
django_application = get_asgi_application()

from gpubroker.json_errors import OPENAI_PATHS as API_PATHS  # noqa: E402 (settings set up now)


class APIHandler(ASGIHandler):
    """Django's ASGI handler without middleware, for the broker's bearer-key API."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware, self._template_response_middleware = [], []
        self._exception_middleware = []
        self._middleware_chain = convert_exception_to_response(self._get_response_async)


api_application = APIHandler()


async def application(scope, receive, send) -> None:
    if scope["type"] == "http" and scope["path"].startswith(API_PATHS):
        await api_application(scope, receive, send)
    else:
        await django_application(scope, receive, send)

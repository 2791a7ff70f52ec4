"""The ASGI entry point (uvicorn). The broker's API paths skip the middleware stack and the
request signals' thread hops; the site's pages run their middleware in one thread.

Django runs each sync middleware of an async request in a worker thread (two hops per
middleware); sessions, CSRF, messages and clickjacking headers mean nothing to an API called
with a bearer key, and on a loaded machine those hops were most of the broker's added time.
So `/v1/…`, `/api/v1/inference` and `/api/v1/auth` go to a Django handler with no middleware
(same URLconf, same views, exceptions still turned into responses).

Every other path is a sync view (the broker's async views are all under those paths), so its
request is handled as under WSGI: the whole middleware chain and the view in one hop to a
thread, instead of a hop in and out of each of the dozen middleware. For the marketplace's
HTMX fragment that was 5–7 ms less CPU per request (of ~85) on the loaded development machine
(benchmarks/load.py, docs/performance.md).

That thread is one of a few long-lived ones (SITE_THREADS), as a threaded WSGI server has,
not one made for the request: Django gives each ASGI request a new thread (and a thread to
join it), and, the request's context being new, a new database connection object, checked out
of the pool and set up. Those were ~3 ms of the ~7 ms of CPU a warm marketplace fragment cost
under ASGI. A site thread keeps its connection object and its cache clients between requests;
the connection itself still goes back to the pool at each request's end (`request_finished`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core import signals
from django.core.asgi import get_asgi_application
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.db import close_old_connections
from django.http import HttpResponseBase
from django.urls import get_resolver, set_script_prefix

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gpubroker.settings")
# Served by uvicorn: pooled database connections (see DATABASE_POOL in settings).
os.environ.setdefault("DATABASE_POOL", "true")
django_application = get_asgi_application()  # sets Django up; serves non-HTTP scopes

from gpubroker.json_errors import OPENAI_PATHS as API_PATHS  # noqa: E402 (settings set up now)
from resilience import aio  # noqa: E402


class APIHandler(ASGIHandler):
    """Django's ASGI handler without middleware, for the broker's bearer-key API, and without
    the three thread hops Django spends on every request around the view: `request_started`
    and `request_finished` run their sync receivers in a thread (one made for each request),
    to close the database connections of the request's context. These views open none there
    (their database work runs in broker.database's threads, which keep their own), so here
    the signals' receivers find nothing to do and run inline (`response.close()`)."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware, self._template_response_middleware = [], []
        self._exception_middleware = []
        self._middleware_chain = convert_exception_to_response(self._get_response_async)

    async def __call__(self, scope, receive, send) -> None:
        await self.handle(scope, receive, send)  # no ThreadSensitiveContext: no thread to pin

    async def handle(self, scope, receive, send) -> None:
        """ASGIHandler.handle (Django 6.0), its signals inline: the response is sent while a
        task listens for the client going away, which cancels the view (a stream's end)."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(response, send)
            response.close()
            return

        async def process_request() -> HttpResponseBase:
            response = await self.run_get_response(request)
            with contextlib.suppress(asyncio.CancelledError):  # the client left mid-answer
                await self.send_response(response, send)
            return response

        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request()),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                with contextlib.suppress(RequestAborted):
                    task.result()
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if tasks[1].cancelled():
            signals.request_finished.send(sender=self.__class__)
        else:
            tasks[1].result().close()
        body_file.close()


# Threads serving the site's pages: each holds one pooled connection while it serves a request
# (DATABASE_POOL_SIZE, default 24: these, broker.database's 4 threads, its recorder, spares).
SITE_THREADS = 16


class SiteHandler(ASGIHandler):
    """Django's ASGI handler with the middleware chain built sync and run, with the view, in
    one hop to one of SITE_THREADS long-lived threads (so one request waiting on the database
    does not hold up another)."""

    def __init__(self) -> None:
        super().__init__()
        self.threads = ThreadPoolExecutor(SITE_THREADS, thread_name_prefix="site")

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def __call__(self, scope, receive, send) -> None:
        await self.handle(scope, receive, send)  # no ThreadSensitiveContext: no thread to make

    async def handle(self, scope, receive, send) -> None:
        """As Django's, with the request's signals, the chain, the view and the response's
        close in that one hop (Django makes three: `request_started`, the response, its close;
        and it listens for a disconnect a sync view cannot act on). The hop does not carry the
        request's context: the thread's own, kept between requests, holds its connections.
        A streamed response is iterated and closed as Django does, in a thread of its own."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        loop = asyncio.get_running_loop()
        try:
            response = await loop.run_in_executor(self.threads, self.respond, scope, body_file)
            if response.streaming:
                async with ThreadSensitiveContext():
                    try:
                        await self.send_response(response, send)
                    finally:
                        await sync_to_async(response.close, thread_sensitive=True)()
            else:
                await self.send_response(response, send)
        finally:
            body_file.close()

    def respond(self, scope, body_file) -> HttpResponseBase:
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__
        if response.streaming:  # read elsewhere: this thread's connection goes back now
            close_old_connections()
        else:  # its content is bytes now: close it (request_finished)
            response.close()
        return response


api_application = APIHandler()
site_application = SiteHandler()

# What every request reads and none frees (modules, settings, the URLconf and the views it
# imports, the models' metadata) is taken out of the cycle collector's reach: each full
# collection walked all of it, 200–250 ms a time in a broker worker at 32 requests in flight on
# the loaded development machine, the broker's slowest answers; 50–80 ms after (docs/
# performance.md).
get_resolver().url_patterns  # noqa: B018 (every view imported now, before the freeze)
gc.freeze()


async def lifespan(receive, send) -> None:
    """The server starting and stopping: at the stop, the outbound connection pool closes."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await aio.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
    elif scope["type"] != "http":
        await django_application(scope, receive, send)
    elif scope["path"].startswith(API_PATHS):
        await api_application(scope, receive, send)
    else:
        await site_application(scope, receive, send)

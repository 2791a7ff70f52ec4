"""Access control: staff pages that HTMX can refresh, and the JSON APIs (a staff session with
CSRF on writes, or the ops token).

Wrong tokens are counted per client address in the cache: after
GPUBROKER_OPS_TOKEN_FAILURE_LIMIT of them within GPUBROKER_OPS_TOKEN_FAILURE_WINDOW seconds,
that address gets 429 until the window has passed, right token or not.
"""

from __future__ import annotations

import hmac
import logging
from functools import wraps
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import resolve_url
from django.utils.http import urlencode
from django.views.decorators.csrf import csrf_exempt

from resilience.store import UNREACHABLE

logger = logging.getLogger(__name__)


def _bearer(request) -> str | None:
    """The bearer token sent, or None when the request carries none."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # The scheme is case-insensitive (RFC 9110 §11.1): "bearer …" is as good as "Bearer …".
    return given.strip() if scheme.lower() == "bearer" else None


def _matches(given: str, token: str) -> bool:
    # Bytes: compare_digest refuses non-ASCII str (a TypeError, once a 500).
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode())


def _failures_key(request) -> str:
    return f"ops-token-failures:{request.META.get('REMOTE_ADDR', '')}"


def _locked_out(request) -> bool:
    try:
        return cache.get(_failures_key(request), 0) >= settings.GPUBROKER_OPS_TOKEN_FAILURE_LIMIT
    except UNREACHABLE:  # no cache, no count: the token comparison still stands
        return False


def _count_failure(request) -> None:
    key = _failures_key(request)
    try:
        cache.add(key, 0, settings.GPUBROKER_OPS_TOKEN_FAILURE_WINDOW)
        cache.incr(key)
    except UNREACHABLE:
        logger.warning("wrong ops token from %s not counted: cache unreachable", key)
    except ValueError:  # expired between add and incr
        pass


def _token_answer(request) -> bool | JsonResponse | None:
    """True: a valid token; a response: refused; None: no token sent (try the session)."""
    given, token = _bearer(request), settings.GPUBROKER_OPS_TOKEN
    if given is None or not token:
        return None
    if _locked_out(request):
        body = {"error": "Too many wrong tokens from this address; try again later."}
        response = JsonResponse(body, status=429)
        response["Retry-After"] = str(settings.GPUBROKER_OPS_TOKEN_FAILURE_WINDOW)
        return response
    if _matches(given, token):
        return True
    _count_failure(request)
    return None


def staff_or_token_required(view):
    """Let in staff sessions and bearers of GPUBROKER_OPS_TOKEN; answer others in JSON."""

    @csrf_exempt  # the token needs no CSRF; sessions are checked below
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        answer = _token_answer(request)
        if answer is True:
            return view(request, *args, **kwargs)
        if answer is not None:
            return answer
        user = request.user
        if not user.is_authenticated:
            return JsonResponse({"error": "Authentication required."}, status=401)
        if not user.is_staff:
            return JsonResponse({"error": "Staff only."}, status=403)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            rejected = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
            if rejected is not None:
                return JsonResponse({"error": "CSRF check failed."}, status=403)
        return view(request, *args, **kwargs)

    return wrapped


def staff_page(view):
    """staff_member_required, and for HTMX a 401 with HX-Redirect to the login page.

    A card that refreshes itself after the session expired would otherwise follow the 302
    and swap the whole login page into the card; htmx follows HX-Redirect on any status and
    loads the login page as a whole, which returns to the page the user was on.
    """
    protected = staff_member_required(view)

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        user = request.user
        if request.htmx and not (user.is_active and user.is_staff):
            return login_redirect(request)
        return protected(request, *args, **kwargs)

    return wrapped


def login_redirect(request: HttpRequest) -> HttpResponse:
    """401 for HTMX: the login page, then back to the page (not the fragment) it came from."""
    here = urlsplit(request.htmx.current_url or request.get_full_path())
    back = here.path + (f"?{here.query}" if here.query else "")
    login = f"{resolve_url(settings.LOGIN_URL)}?{urlencode({REDIRECT_FIELD_NAME: back})}"
    response = HttpResponse("Your session has ended: log in again.", status=401)
    response["HX-Redirect"] = login
    return response

"""Access control: staff pages that HTMX can refresh, and the JSON APIs (a staff session with
CSRF on writes, or the ops token)."""

from __future__ import annotations

import hmac
from functools import wraps
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import resolve_url
from django.utils.http import urlencode
from django.views.decorators.csrf import csrf_exempt


def _has_ops_token(request) -> bool:
    token = settings.GPUBROKER_OPS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # The scheme is case-insensitive (RFC 9110 §11.1): "bearer …" is as good as "Bearer …".
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


def staff_or_token_required(view):
    """Let in staff sessions and bearers of GPUBROKER_OPS_TOKEN; answer others in JSON."""

    @csrf_exempt  # the token needs no CSRF; sessions are checked below
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if _has_ops_token(request):
            return view(request, *args, **kwargs)
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

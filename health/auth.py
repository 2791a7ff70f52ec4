"""Access control for the JSON APIs: a staff session (with CSRF on writes) or the ops token."""

from __future__ import annotations

import hmac
from functools import wraps

from django.conf import settings
from django.http import JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
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

"""Who may do what: POST-only sync, bearer tokens in any bytes, throttled guessing, the
browser's own defences (CSP, HTTPS settings), and JSON errors on the JSON paths."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from gpubroker.celery import app

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "ops-token-0123456789"


@pytest.fixture
def ops_token(settings):
    settings.GPUBROKER_OPS_TOKEN = TOKEN
    settings.GPUBROKER_OPS_TOKEN_FAILURE_LIMIT = 3


def test_sync_refuses_get_even_from_staff(staff_client, registry):
    assert staff_client.get("/api/v1/providers/sync").status_code == 405


@pytest.fixture
def queue():
    """The broker's queue, emptied after the test (no worker runs here to take the tasks)."""
    yield
    app.control.purge()


def test_sync_queues_and_answers_202_with_runs_to_follow(staff_client, registry, settings, queue):
    for provider in registry.values():
        setattr(settings, f"{provider.env_prefix}_ENABLED", provider.slug == "render")
    response = staff_client.post("/api/v1/providers/sync")
    assert response.status_code == 202
    (run,) = response.json()["providers"]
    assert run["outcome"] == "running"
    assert run["url"] == f"/api/v1/providers/sync/runs/{run['id']}"
    assert staff_client.get(run["url"]).status_code == 202


def test_sync_waits_for_the_runs_when_asked(staff_client, registry, settings, eager_tasks):
    for provider in registry.values():
        setattr(settings, f"{provider.env_prefix}_ENABLED", provider.slug == "render")
    response = staff_client.post("/api/v1/providers/sync?wait=5")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] == 1 and body["providers"][0]["outcome"] == "ok"
    assert staff_client.get(body["providers"][0]["url"]).json()["outcome"] == "ok"


@pytest.mark.parametrize("given", ["tökén", "🙂", "\u00ff" * 20])
def test_a_non_ascii_bearer_token_is_a_401_not_a_500(client, registry, ops_token, given):
    response = client.get("/api/v1/provider-health/health", HTTP_AUTHORIZATION=f"Bearer {given}")
    assert response.status_code == 401
    assert response.json() == {"error": "Authentication required."}


def test_wrong_ops_tokens_are_throttled_per_address(client, registry, ops_token):
    path = "/api/v1/provider-health/health"
    for _ in range(3):
        assert client.get(path, HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    refused = client.get(path, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert refused.status_code == 429 and refused["Retry-After"]
    other = client.get(path, HTTP_AUTHORIZATION=f"Bearer {TOKEN}", REMOTE_ADDR="127.0.0.2")
    assert other.status_code == 200


def test_admin_login_is_throttled_after_five_failures(client, django_user_model, settings):
    django_user_model.objects.create_user("ops", password="right-password", is_staff=True)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/admin/login/", {"username": "ops", "password": "wrong"})
    response = client.post("/admin/login/", {"username": "ops", "password": "right-password"})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    # Another address guessing the same user is refused too (per user, not only per IP).
    response = client.post(
        "/admin/login/", {"username": "ops", "password": "wrong"}, REMOTE_ADDR="127.0.0.9"
    )
    assert response.status_code == 429


def test_pages_carry_a_csp_that_allows_only_our_own_scripts(client, registry):
    response = client.get("/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("style-src")[0]
    page = response.content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "an inline script"
    assert not re.search(r"\son[a-z]+=", page), "an inline event handler"
    assert "/static/django_htmx/htmx" in page


def deploy_environment(**extra: str) -> dict[str, str]:
    """What production sets, and nothing else (DEBUG off: every secure default on)."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "DATABASE_URL")}
    return keep | {
        "DEBUG": "false",
        "SECRET_KEY": "k" * 20 + Fernet.generate_key().decode(),
        "GPUBROKER_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "gpubroker.example",
        **extra,
    }


def test_the_deploy_check_is_clean_with_production_defaults():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=deploy_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_https_default_is_switchable_by_its_setting_name():
    code = (
        "from django.conf import settings as s; "
        "print(s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SECURE_HSTS_SECONDS)"
    )
    run = [sys.executable, "-c", f"import django; django.setup(); {code}"]
    env = deploy_environment(DJANGO_SETTINGS_MODULE="gpubroker.settings")
    on = subprocess.run(run, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert on.stdout.split() == ["True", "True", "True", "31536000"], on.stderr
    off = env | {
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "SECURE_HSTS_SECONDS": "0",
    }
    result = subprocess.run(run, cwd=ROOT, env=off, capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["False", "False", "False", "0"], result.stderr


@pytest.fixture
def redis_down(settings):
    """Shared state pointed at a loopback port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"


def test_with_redis_down_json_endpoints_answer_503_json(staff_client, registry, redis_down):
    for path in ("health", "circuit-breakers", "metrics/summary", "providers/groq/health"):
        response = staff_client.get(f"/api/v1/provider-health/{path}")
        assert response.status_code == 503, path
        assert response.json()["dependency"] == "redis"


def test_with_redis_down_pages_render_from_the_database(staff_client, registry, redis_down):
    for path in ("/", "/health/", "/health/groq/"):
        response = staff_client.get(path)
        assert response.status_code == 200, path
        assert "Live stats unavailable" in response.content.decode() or (
            "live stats unavailable" in response.content.decode()
        ), path


def test_with_redis_down_readyz_names_it_within_two_seconds(client, registry, redis_down):
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < 2
    assert response.status_code == 503
    assert response.json()["checks"]["shared_state"].startswith("error")
    assert response.json()["checks"]["database"] == "ok"

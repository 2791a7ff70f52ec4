"""Settings read from the environment: a variable set but blank means unset."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def settings_seen(**environment: str) -> list[str]:
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.GROQ_BASE_URL)"
    )
    env = {"PATH": "", "DJANGO_SETTINGS_MODULE": "gpubroker.settings", **environment}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_it_treats_a_blank_database_url_as_unset_and_runs_on_the_embedded_default():
    engine, broker, groq = settings_seen(
        DATABASE_URL="", REDIS_URL=" ", CELERY_BROKER_URL="", GROQ_BASE_URL=""
    )
    assert engine == "django.db.backends.sqlite3"
    assert broker == "filesystem://"
    assert groq == "https://api.groq.com"


def test_a_set_database_url_still_wins():
    engine, _, _ = settings_seen(DATABASE_URL="postgres://u@127.0.0.1:5432/x")
    assert engine == "django.db.backends.postgresql"


def test_on_the_embedded_default_every_filter_renders_before_any_poll(tmp_path):
    """A fresh machine with no Postgres: SQLite, the providers loaded, nothing polled yet. The
    marketplace and its filters render (saying why there is nothing), never a 500."""
    env = {
        "PATH": "",
        "DJANGO_SETTINGS_MODULE": "gpubroker.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": "",
        "DEBUG": "true",  # as `make run` serves it
        "ALLOWED_HOSTS": "testserver",
    }
    code = (
        "import django; django.setup()\n"
        "from django.core.management import call_command\n"
        "from django.test import Client\n"
        "call_command('migrate', verbosity=0); call_command('load_providers', verbosity=0)\n"
        "client = Client(raise_request_exception=False)\n"
        "for query in ('', 'provider=deepinfra', 'q=llama', 'gpu=H100', 'sort=newest'):\n"
        "    for htmx in ({}, {'HTTP_HX_REQUEST': 'true'}):\n"
        "        answer = client.get('/?' + query, **htmx)\n"
        "        print(query or '-', answer.status_code, b'No offers match.' in answer.content)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()[-10:]  # after load_providers' own line
    assert len(lines) == 10 and all(line.endswith(" 200 True") for line in lines), done.stdout

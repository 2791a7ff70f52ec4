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

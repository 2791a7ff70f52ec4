"""Real separate processes running the client against the same shared state (the
cross-process tests of the breaker and the limiter; marked slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection

from tests.conftest import PATH

ROOT = Path(__file__).resolve().parents[2]
KNOBS = [
    "GROQ_BASE_URL",
    "GROQ_API_KEY",
    "GROQ_RATE_LIMIT",
    "GROQ_RATE_LIMIT_BURST",
    "PROVIDER_CIRCUIT_BREAKER_THRESHOLD",
    "PROVIDER_CIRCUIT_BREAKER_TIMEOUT",
    "PROVIDER_CIRCUIT_BREAKER_HALF_OPEN_MAX_CALLS",
    "PROVIDER_RATE_LIMITER_ENABLED",
    "PROVIDER_RATE_LIMITER_MAX_WAIT",
    "PROVIDER_CACHE_ENABLED",
    "PROVIDER_MAX_RETRIES",
    "REDIS_URL",
]


@pytest.fixture
def processes(settings):
    """Start `count` worker processes configured like this test (same store, same knobs),
    release them together, and return their call outcomes; `on_outcome` hears each one as it
    happens."""

    def run(
        count: int,
        *,
        threads: int = 1,
        calls: int = 1,
        not_before: float = 0,
        database_url: str = "",
        on_outcome: Callable[[str], None] = lambda outcome: None,
    ) -> list[str]:
        db = connection.settings_dict
        env = {
            **os.environ,
            **{name: str(getattr(settings, name)) for name in KNOBS},
            "DJANGO_SETTINGS_MODULE": "gpubroker.settings",
            "DATABASE_URL": database_url
            or f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        }
        spec = json.dumps(
            {"slug": "groq", "prefix": "GROQ", "path": PATH, "threads": threads, "calls": calls}
        )
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.resilience.worker", spec],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(count)
        ]
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready"
        time.sleep(max(0.0, not_before - time.time()))
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outcomes: list[str] = []

        def read(proc: subprocess.Popen) -> None:
            for line in proc.stdout:
                outcomes.append(line.strip())
                on_outcome(line.strip())

        readers = [threading.Thread(target=read, args=(proc,)) for proc in procs]
        for reader in readers:
            reader.start()
        for proc, reader in zip(procs, readers, strict=True):
            reader.join(timeout=60)
            assert proc.wait(timeout=5) == 0
        return outcomes

    return run

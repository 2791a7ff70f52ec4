"""`make run` prints its URL after web answers (and the Celery banners), not before them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pytest_httpserver import HTTPServer

ROOT = Path(__file__).resolve().parent.parent


def test_it_prints_the_url_once_web_answers(httpserver: HTTPServer):
    httpserver.expect_request("/healthz").respond_with_json({"status": "ok"})
    port = str(httpserver.port)
    done = subprocess.run(
        [sys.executable, "-m", "gpubroker.announce", "--once", "--settle", "0"],
        cwd=ROOT,
        env={"WEB_PORT": port, "PORT": "1", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.startswith(f"GPUBroker: http://127.0.0.1:{port}/  (status: /status/")
    assert len(httpserver.log) == 1  # it waited for web's answer


def test_the_procfile_starts_it_after_web_worker_and_beat():
    names = [line.split(":")[0] for line in (ROOT / "Procfile").read_text().splitlines()]
    assert names == ["web", "worker", "beat", "url"]

"""The real stack for fault tests: a Redis of the test's own on a spare loopback port, the
web app under uvicorn (as production serves it) and a Celery worker, all on the test
database; each test breaks one thing. Every process is started here and stopped here, by its
own pid."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from cryptography.fernet import Fernet
from django.db import connection
from pytest_httpserver import HTTPServer

from providers.models import Provider

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
TOKEN = "faults-ops-token-0001"


def spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # not up yet
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    """Stop a process this suite started (its pid only), hard if it will not go."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)  # a paused one must run to hear SIGTERM
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def pool_children(pid: int) -> list[int]:
    """A Celery prefork worker's pool processes (where tasks run)."""
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def peak_rss(pid: int) -> int:
    """The most memory the process has held at once (VmHWM), in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) * 1024


class OwnRedis:
    def __init__(self, directory: Path):
        self.port = spare_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=1)
        wait_until(client.ping, 20, "own Redis answering")
        client.close()

    def pause(self) -> None:
        """Hung: the port accepts connections, nothing answers."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        stop(self.proc)


class Stack:
    """Processes configured like production (DEBUG off), on loopback only."""

    def __init__(self, redis_: OwnRedis, provider_origin: str, logs: Path, enabled: set[str]):
        db = connection.settings_dict
        self.logs = logs
        self.procs: list[subprocess.Popen] = []
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/tmp"),
            "DJANGO_SETTINGS_MODULE": "gpubroker.settings",
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "REDIS_URL": redis_.url,
            "DEBUG": "false",
            "SECRET_KEY": "faults-" + Fernet.generate_key().decode(),
            "GPUBROKER_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "false",
            "SESSION_COOKIE_SECURE": "false",
            "CSRF_COOKIE_SECURE": "false",
            "SECURE_HSTS_SECONDS": "0",
            "GPUBROKER_OPS_TOKEN": TOKEN,
            "PROVIDER_RETRY_BASE_DELAY": "0.01",
            "PROVIDER_RETRY_MAX_DELAY": "0.05",
            "PROVIDER_RETRY_JITTER": "0",
        }
        for provider in Provider.objects.all():  # nothing leaves the machine
            self.env[f"{provider.env_prefix}_BASE_URL"] = provider_origin
            self.env[f"{provider.env_prefix}_ENABLED"] = str(provider.slug in enabled).lower()
        self.web_url = ""

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("w")
        proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=log)
        self.procs.append(proc)
        return proc

    def web(self) -> str:
        """The web app as production serves it (Procfile, docker-compose.yml): uvicorn on
        gpubroker.asgi, one worker process, pooled database connections."""
        port = spare_port()
        self._start(
            "web",
            [
                str(BIN / "uvicorn"),
                "gpubroker.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--no-access-log",
            ],
        )
        self.web_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{self.web_url}/healthz").status_code == 200, 60, "web")
        return self.web_url

    def login(self, username: str, password: str) -> httpx.Client:
        """A browser's session: the admin login form, CSRF token and all."""
        browser = httpx.Client(base_url=self.web_url, timeout=30)
        form = browser.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        done = browser.post(
            "/admin/login/?next=/admin/",
            data={"csrfmiddlewaretoken": token, "username": username, "password": password},
        )
        assert done.status_code == 302, done.text[:500]
        return browser

    def worker(self, concurrency: int = 1) -> subprocess.Popen:
        proc = self._start(
            "worker",
            [
                str(BIN / "celery"),
                "-A",
                "gpubroker",
                "worker",
                "-P",
                "prefork",
                "-c",
                str(concurrency),
                "--without-mingle",
                "--without-gossip",
                "--loglevel",
                "INFO",
                "-n",
                f"faults{os.getpid()}@localhost",
            ],
        )
        log = self.logs / "worker.log"
        wait_until(lambda: "ready." in log.read_text(), 90, "Celery worker ready")
        return proc

    def get(self, path: str, **kwargs) -> httpx.Response:
        return httpx.get(f"{self.web_url}{path}", timeout=30, **kwargs)

    def api(self, path: str) -> httpx.Response:
        return self.get(path, headers={"Authorization": f"Bearer {TOKEN}"})

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)


@pytest.fixture
def own_redis(tmp_path, settings) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    settings.REDIS_URL = server.url  # this process's shared store too
    yield server
    server.stop()


@pytest.fixture
def staff(django_user_model, settings) -> tuple[str, str]:
    """A staff member's username and password, for `Stack.login()`."""
    # The web process checks passwords with Django's default hasher, not the tests' fast one.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    django_user_model.objects.create_user("ops", password="faults-pw", is_staff=True)
    return "ops", "faults-pw"


@pytest.fixture
def stack(transactional_db, registry, own_redis, httpserver: HTTPServer, tmp_path):
    """Start nothing yet: a test calls stack.web() / stack.worker() for what it needs; the
    providers it sets in `stack.enabled` before starting are the only ones enabled."""

    def build(*enabled: str) -> Stack:
        built = Stack(own_redis, httpserver.url_for("").rstrip("/"), tmp_path, set(enabled))
        started.append(built)
        return built

    started: list[Stack] = []
    yield build
    for built in started:
        built.stop()

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest
from werkzeug import Response

from resilience import breaker, errors
from tests.conftest import MODELS, PATH, get, requests_to
from tests.resilience.conftest import ROOT


@pytest.fixture
def breaker_settings(settings):
    settings.PROVIDER_CIRCUIT_BREAKER_THRESHOLD = 5
    settings.PROVIDER_CIRCUIT_BREAKER_TIMEOUT = 0.5
    settings.PROVIDER_CIRCUIT_BREAKER_HALF_OPEN_MAX_CALLS = 3
    return settings


def state() -> str:
    return breaker.current("groq")["state"]


def held_trials() -> tuple[Callable, Callable[[str], None]]:
    """A handler holding every trial call until three callers have been refused, so the
    refusals happen while the trials are in flight however slowly the processes start."""
    refused: list[str] = []
    release = threading.Event()

    def handler(request) -> Response:
        release.wait(timeout=10)
        return Response('{"object": "list", "data": []}', content_type="application/json")

    def on_outcome(outcome: str) -> None:
        if outcome == "CircuitBreakerOpen":
            refused.append(outcome)
        if len(refused) == 3:
            release.set()

    return handler, on_outcome


def open_it(server, client) -> float:
    """Five 500s in a row; returns when the breaker opened."""
    server.expect_request(PATH).respond_with_json({"error": "down"}, status=500)
    for _ in range(5):
        with pytest.raises(errors.Transient):
            get(client)
    server.clear()
    return time.time()


def test_it_opens_after_five_failures_and_the_sixth_call_makes_no_request(
    backend, breaker_settings, groq_server, groq_client
):
    groq_server.expect_request(PATH).respond_with_json({"error": "down"}, status=503)
    for _ in range(4):
        with pytest.raises(errors.Transient):
            get(groq_client)
    assert state() == "CLOSED"
    with pytest.raises(errors.Transient):
        get(groq_client)
    assert state() == "OPEN"
    with pytest.raises(errors.CircuitBreakerOpen, match="no call made"):
        get(groq_client)
    assert requests_to(groq_server) == 5
    described = breaker.current("groq")
    assert described["failure_count"] == 5 and described["trip_count"] == 1
    assert described["last_failure_time"] is not None


def test_a_success_resets_the_count_of_consecutive_failures(
    backend, breaker_settings, groq_server, groq_client
):
    groq_server.expect_request(PATH).respond_with_json({}, status=500)
    for _ in range(4):
        with pytest.raises(errors.Transient):
            get(groq_client)
    groq_server.clear()
    groq_server.expect_request(PATH).respond_with_json(MODELS)
    get(groq_client)
    groq_server.clear()
    groq_server.expect_request(PATH).respond_with_json({}, status=500)
    for _ in range(4):
        with pytest.raises(errors.Transient):
            get(groq_client)
    assert state() == "CLOSED"


@pytest.mark.slow
def test_after_the_timeout_exactly_three_trial_calls_pass_across_two_processes(
    transactional_db, backend, breaker_settings, groq_server, groq_client, processes
):
    opened = open_it(groq_server, groq_client)
    handler, on_outcome = held_trials()
    groq_server.expect_request(PATH).respond_with_handler(handler)
    outcomes = processes(2, threads=3, not_before=opened + 0.6, on_outcome=on_outcome)
    assert sorted(outcomes) == ["CircuitBreakerOpen"] * 3 + ["ok"] * 3
    assert requests_to(groq_server) == 3
    assert state() == "CLOSED"  # all three trials succeeded
    get(groq_client)
    assert requests_to(groq_server) == 4


def test_a_failed_trial_opens_it_again(backend, breaker_settings, groq_server, groq_client):
    open_it(groq_server, groq_client)
    time.sleep(0.55)
    groq_server.expect_request(PATH).respond_with_json({}, status=502)
    with pytest.raises(errors.Transient):
        get(groq_client)
    assert state() == "OPEN"
    with pytest.raises(errors.CircuitBreakerOpen):
        get(groq_client)
    assert requests_to(groq_server) == 1
    assert breaker.current("groq")["trip_count"] == 2


def test_reset_closes_it_and_calls_go_out_again(
    backend, breaker_settings, groq_server, groq_client
):
    open_it(groq_server, groq_client)
    breaker.reset("groq")
    assert state() == "CLOSED"
    groq_server.expect_request(PATH).respond_with_json(MODELS)
    assert get(groq_client).json() == MODELS
    assert requests_to(groq_server) == 1


def test_only_transient_failures_count(backend, breaker_settings, groq_server, groq_client):
    """A provider answering 401, 404 or 429 is up: the breaker stays closed."""
    for status, error in [
        (401, errors.InvalidKey),
        (404, errors.NotFound),
        (429, errors.RateLimited),
    ]:
        groq_server.expect_request(PATH).respond_with_json({"error": "no"}, status=status)
        for _ in range(6):
            with pytest.raises(error):
                get(groq_client)
        groq_server.clear()
    assert state() == "CLOSED"


@pytest.mark.slow
def test_on_the_embedded_default_the_trials_are_shared_through_sqlite(
    tmp_path, breaker_settings, settings, groq_server, processes
):
    """No Redis, no Postgres: `make run`'s SQLite file carries the breaker for every process."""
    url = f"sqlite:///{tmp_path / 'gpubroker.sqlite3'}"
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": ""}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    settings.REDIS_URL = ""
    groq_server.expect_request(PATH).respond_with_json({}, status=500)
    assert processes(1, calls=5, database_url=url) == ["Transient"] * 5
    opened = time.time()
    groq_server.clear()
    handler, on_outcome = held_trials()
    groq_server.expect_request(PATH).respond_with_handler(handler)
    outcomes = processes(
        2, threads=3, not_before=opened + 0.6, database_url=url, on_outcome=on_outcome
    )
    assert sorted(outcomes) == ["CircuitBreakerOpen"] * 3 + ["ok"] * 3
    assert requests_to(groq_server) == 3
    with sqlite3.connect(tmp_path / "gpubroker.sqlite3") as db:
        row = db.execute("SELECT value FROM resilience_sharedstate WHERE key = 'breaker:groq'")
        assert json.loads(row.fetchone()[0])["state"] == "CLOSED"

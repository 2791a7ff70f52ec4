"""A dropped database connection costs no request (CONN_HEALTH_CHECKS)."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from tests.faults.conftest import spare_port
from tests.marketplace.conftest import llm, publish

pytestmark = pytest.mark.slow


def terminate_other_connections() -> int:
    """What a Postgres restart or failover does to the web worker's kept connection."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_the_first_request_after_a_dropped_connection_is_not_a_500(stack, registry):
    publish(registry["groq"], llm("llama-3.1-8b", usd_per_1m_input=0.05))
    web = stack("groq")
    web.web()
    assert web.get("/").status_code == 200  # the worker now keeps a connection
    assert web.api("/api/v1/provider-health/health").status_code == 200
    assert terminate_other_connections() >= 1
    page = web.get("/")
    assert page.status_code == 200 and "llama-3.1-8b" in page.text
    assert terminate_other_connections() >= 1
    assert web.api("/api/v1/provider-health/health").status_code == 200


def test_with_the_database_unreachable_json_paths_answer_json(stack, registry):
    web = stack("groq")
    web.env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{spare_port()}/gone"
    web.web()
    for path in ("/api/v1/provider-health/health", "/api/v1/providers/sync/runs/1"):
        started = time.monotonic()
        response = web.api(path)
        assert response.status_code == 503, path
        assert response.json()["dependency"] == "database"
        # uvicorn's pooled connections: the pool's wait (DATABASE_POOL_TIMEOUT, 5 s), not 30 s
        assert time.monotonic() - started < 10, path
    ready = web.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["database"] != "ok"

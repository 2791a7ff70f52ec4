from __future__ import annotations

import time

import pytest
from werkzeug import Response

from resilience import errors, limiter
from resilience.client import ProviderClient
from resilience.store import store
from tests.conftest import MODELS, PATH, get, policy_for, requests_to


def arrivals(server) -> list[float]:
    """Serve MODELS and note when each request reached the server."""
    seen: list[float] = []

    def handler(request):
        seen.append(time.monotonic())
        return Response('{"data": []}', content_type="application/json")

    server.expect_request(PATH).respond_with_handler(handler)
    return seen


def stats() -> dict:
    from resilience.metrics import stats_key

    state, counters = store().read([limiter.key("groq")], [stats_key("groq")])
    return limiter.describe(
        state[limiter.key("groq")], policy_for("groq"), counters[stats_key("groq")]
    )


@pytest.mark.slow
def test_two_processes_sharing_one_limiter_never_exceed_the_rate(
    transactional_db, backend, settings, groq_server, processes
):
    settings.GROQ_RATE_LIMIT = 1200  # 20 per second
    settings.GROQ_RATE_LIMIT_BURST = 4
    seen = arrivals(groq_server)
    outcomes = processes(2, calls=10)
    assert outcomes == ["ok"] * 20
    seen.sort()
    # One shared bucket: 4 at once, then one per 50 ms, so 20 calls take at least 0.8 s.
    # A bucket per process (8 at once, 40/s) would be done in about 0.3 s.
    assert seen[-1] - seen[0] >= (20 - 4) / 20 - 0.1
    # And no run of n requests is shorter than (n - burst) / rate, with two requests of slack
    # for a server thread that is scheduled late and then serves what queued.
    for i in range(len(seen)):
        for j in range(i + 1, len(seen)):
            assert j - i + 1 <= 4 + 20 * (seen[j] - seen[i]) + 2, (i, j, seen[j] - seen[i])


def test_a_call_over_the_limit_waits_for_its_token(backend, settings, groq_server):
    settings.GROQ_RATE_LIMIT = 600  # one token every 0.1 s
    settings.GROQ_RATE_LIMIT_BURST = 1
    groq_client = ProviderClient(policy_for("groq"))  # the policy is read when it is made
    groq_server.expect_request(PATH).respond_with_json(MODELS)
    started = time.monotonic()
    get(groq_client)
    get(groq_client)  # its token is due 0.1 s after the first one was taken
    assert time.monotonic() - started >= 0.1
    assert requests_to(groq_server) == 2
    assert stats()["requests_waited"] == 1


def test_it_refuses_a_call_that_would_wait_too_long_without_calling(backend, settings, groq_server):
    settings.GROQ_RATE_LIMIT = 6  # one token every 10 s
    settings.GROQ_RATE_LIMIT_BURST = 1
    groq_client = ProviderClient(policy_for("groq"))
    settings.PROVIDER_RATE_LIMITER_MAX_WAIT = 0.2
    groq_server.expect_request(PATH).respond_with_json(MODELS)
    get(groq_client)
    with pytest.raises(errors.RateLimitExceeded) as refused:
        get(groq_client)
    assert 9 < refused.value.retry_after <= 10
    assert requests_to(groq_server) == 1
    assert stats() | {"available_tokens": None} == {
        "enabled": True,
        "rate": 6,
        "capacity": 1,
        "available_tokens": None,
        "utilization": pytest.approx(1, abs=0.05),
        "requests_blocked": 1,
        "requests_waited": 0,
    }


def test_it_can_be_switched_off(backend, settings, groq_server, groq_client):
    settings.PROVIDER_RATE_LIMITER_ENABLED = False
    settings.GROQ_RATE_LIMIT = 1
    settings.GROQ_RATE_LIMIT_BURST = 1
    settings.PROVIDER_RATE_LIMITER_MAX_WAIT = 0
    groq_server.expect_request(PATH).respond_with_json(MODELS)
    for _ in range(3):
        get(groq_client)
    assert requests_to(groq_server) == 3

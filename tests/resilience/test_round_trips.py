"""On Redis a resilient call costs almost no round trips of its own: the breaker's CLOSED state
is trusted for a second, tokens are leased in batches, metrics are written behind; and what
another process does still reaches this one within that second."""

from __future__ import annotations

import json
import math
import threading
import time

import pytest
from django.conf import settings
from redis import Redis

from resilience import breaker, errors, limiter, metrics
from resilience.client import ProviderClient
from resilience.store import REDIS_PREFIX
from tests.conftest import MODELS, PATH, get, policy_for, requests_to

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis() -> Redis:
    return Redis.from_url(settings.REDIS_URL)


class Watch:
    """Every command the Redis server runs on this test's database, seen through MONITOR
    (other databases of the same server are other people's)."""

    def __init__(self, redis: Redis):
        self.redis, self.seen = redis, []
        self.db = redis.connection_pool.connection_kwargs.get("db", 0)
        self.thread = threading.Thread(target=self._listen, daemon=True)

    def _listen(self) -> None:
        with self.redis.monitor() as monitor:
            self.ready.set()
            for command in monitor.listen():
                if command["command"] == "ECHO end-of-watch":
                    return
                # Commands a client sent (not those a Lua script runs), connecting aside.
                sent = command.get("client_type") != "lua"
                if (
                    command["db"] == self.db
                    and sent
                    and not command["command"].startswith("SELECT")
                ):
                    self.seen.append(command["command"])

    def __enter__(self) -> Watch:
        self.ready = threading.Event()
        self.thread.start()
        self.ready.wait(5)
        return self

    def __exit__(self, *exc) -> None:
        self.redis.echo("end-of-watch")
        self.thread.join(5)


def test_a_hundred_fast_calls_cost_a_few_redis_round_trips(settings, groq_server, redis):
    settings.GROQ_RATE_LIMIT = 60_000  # 1,000 a second: leases of 250 tokens
    settings.GROQ_RATE_LIMIT_BURST = 1_000
    groq_server.expect_request(PATH).respond_with_json(MODELS)
    client = ProviderClient(policy_for("groq"))
    with Watch(redis) as watch:
        started = time.monotonic()
        for _ in range(100):
            get(client)
        seconds = math.ceil(time.monotonic() - started)
    client.close()
    # Per second at most: a breaker read, a lease of tokens, a write of the metrics (and the
    # first run of each script loads it). A round trip per call would be 300.
    assert len(watch.seen) <= 3 * seconds + 3, "\n".join(c[:90] for c in watch.seen)
    assert len(watch.seen) < 20
    assert requests_to(groq_server) == 100
    assert metrics.window("groq").calls == 100  # reading flushes this process's own counters


def test_metrics_reach_other_processes_within_the_flush_interval(settings, groq_server, redis):
    settings.PROVIDER_METRICS_FLUSH_SECONDS = 0.2
    groq_server.expect_request(PATH).respond_with_json(MODELS)
    client = ProviderClient(policy_for("groq"))
    get(client)
    get(client)
    client.close()
    stats = REDIS_PREFIX + metrics.stats_key("groq")
    assert redis.hget(stats, "calls") is None  # still held by this process
    time.sleep(0.5)
    assert float(redis.hget(stats, "calls")) == 2  # what another process now reads


def test_a_breaker_opened_elsewhere_stops_this_process_within_the_local_ttl(
    settings, groq_server, redis
):
    settings.PROVIDER_CIRCUIT_BREAKER_LOCAL_TTL = 0.3
    groq_server.expect_request(PATH).respond_with_json(MODELS)
    client = ProviderClient(policy_for("groq"))
    get(client)  # reads CLOSED and trusts it for 0.3 s
    opened = {**breaker.initial(), "state": breaker.OPEN, "opened_at": time.time()}
    redis.set(REDIS_PREFIX + breaker.key("groq"), json.dumps(opened))  # another process
    get(client)  # still trusted: goes out
    time.sleep(0.35)
    with pytest.raises(errors.CircuitBreakerOpen):
        get(client)
    client.close()
    assert requests_to(groq_server) == 2


def test_a_failure_is_shared_at_once_and_read_back_on_the_next_call(settings, groq_server, redis):
    settings.PROVIDER_CIRCUIT_BREAKER_THRESHOLD = 2
    settings.PROVIDER_CIRCUIT_BREAKER_LOCAL_TTL = 60  # only a write makes it read again
    groq_server.expect_request(PATH).respond_with_json({}, status=500)
    client = ProviderClient(policy_for("groq"))
    for _ in range(2):
        with pytest.raises(errors.Transient):
            get(client)
    assert breaker.current("groq")["state"] == breaker.OPEN
    with pytest.raises(errors.CircuitBreakerOpen):
        get(client)
    client.close()
    assert requests_to(groq_server) == 2


def test_leased_tokens_are_never_spent_twice(settings, groq_server, redis):
    """Two clients of one provider in this process share its leases: the tokens taken from
    the shared bucket cover every call made, with at most one lease left unspent."""
    settings.GROQ_RATE_LIMIT = 60  # one token a second: the bucket barely refills here
    settings.GROQ_RATE_LIMIT_BURST = 400
    settings.PROVIDER_RATE_LIMITER_LEASE_SECONDS = 100  # leases of 100 tokens
    groq_server.expect_request(PATH).respond_with_json(MODELS)
    policy = policy_for("groq")
    assert limiter.lease_size(policy) == 100
    one, two = ProviderClient(policy), ProviderClient(policy)
    started = time.time()
    for _ in range(125):
        get(one)
        get(two)
    one.close()
    two.close()
    refill = time.time() - started  # at most one token a second since the first take
    state = json.loads(redis.get(REDIS_PREFIX + limiter.key("groq")))
    taken = 400 - state["tokens"]
    assert taken + refill >= 250 and taken <= 250 + 100
    assert requests_to(groq_server) == 250


def test_cache_misses_read_the_success_rate_once_a_second(settings, groq_server, redis):
    """A miss stores the answer for a TTL that follows the provider's success rate: read from
    the shared store at most once a second, not on every miss."""
    settings.PROVIDER_CACHE_ENABLED = True
    settings.GROQ_RATE_LIMIT = 60_000
    settings.GROQ_RATE_LIMIT_BURST = 1_000
    groq_server.expect_request(PATH).respond_with_json(MODELS)
    client = ProviderClient(policy_for("groq"))
    with Watch(redis) as watch:
        started = time.monotonic()
        for n in range(100):
            get(client, params={"n": n})  # a new URL each time: a miss
        seconds = math.ceil(time.monotonic() - started)
    client.close()
    windows = [c for c in watch.seen if c.startswith("HGETALL") and ":window:groq:" in c]
    # The window is minutes of counters, a key each: read once, not once per miss.
    assert 0 < len(windows) <= 6 * seconds, "\n".join(c[:90] for c in watch.seen)
    # Per miss: the lookup and the store of the answer, in the cache.
    assert len(watch.seen) <= 2 * 100 + 8 * seconds + 3
    assert requests_to(groq_server) == 100

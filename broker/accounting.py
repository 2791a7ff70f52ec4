"""What one request cost and how it went: its usage record, the key's spend and the broker's
counters (exported on /metrics)."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connections, transaction

from broker import leases
from broker.leases import Lease
from broker.models import ZERO, ApiKey, CostSource, Outcome, Usage, relaxed_commit
from broker.routing import Candidate, Plan
from resilience.store import store

logger = logging.getLogger(__name__)
COUNTERS = "broker:totals"


@dataclass
class Call:
    """One request to the broker, filled in as it goes and recorded once at its end."""

    key: ApiKey
    endpoint: str
    model: str
    stream: bool = False
    started: float = field(default_factory=time.monotonic)
    plan: Plan | None = None
    reserved: bool = False  # holds its estimate itself (ApiKey.reserve)
    lease: Lease | None = None  # or holds it from this process's lease (broker.leases)
    admitted: dict | Exception | None = None  # the first candidate's admission, asked ahead
    attempts: list[dict[str, str]] = field(default_factory=list)
    served: Candidate | None = None
    ttfb: float | None = None  # seconds to the first byte from the provider
    total: float = 0.0  # seconds from start to end, set when it ends
    usage: dict[str, Any] | None = None
    outcome: str = Outcome.OK
    status: int = 200
    error: str = ""

    def tried(self, candidate: Candidate, code: str, message: str) -> None:
        self.attempts.append(
            {"provider": candidate.provider, "offer": str(candidate.offer_id), "error": code,
             "message": message}
        )  # fmt: skip

    def cost(self) -> tuple[Decimal | None, str]:
        """The provider's own `usage.estimated_cost` (DeepInfra) where given, else tokens ×
        the offer's stored prices; and which of the two it is."""
        usage = self.usage or {}
        stated = usage.get("estimated_cost")
        if isinstance(stated, int | float) and not isinstance(stated, bool):
            return Decimal(str(stated)), CostSource.PROVIDER
        prompt, completion = tokens(usage)
        if self.served and prompt is not None:
            priced = self.served.cost(prompt, completion or 0)
            if priced is not None:
                return priced, CostSource.PRICES
        return None, CostSource.UNKNOWN


def tokens(usage: dict[str, Any]) -> tuple[int | None, int | None]:
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return (
        prompt if isinstance(prompt, int) else None,
        completion if isinstance(completion, int) else None,
    )


def finish(call: Call) -> None:
    """The request has ended: have it recorded (by the writer, a moment later)."""
    call.total = time.monotonic() - call.started
    RECORDER.put(call)


def write(calls: list[Call], due: list[leases.Lease]) -> None:
    """Record ended requests: their Usage rows (in one INSERT), the keys' spend (one UPDATE per
    key, however many requests, with the release of the leases `due`), then the counters.
    What each offer was seen to do is rolled up from the rows, off the request path
    (broker.usage.roll_up). A lease gets its requests' holds back once their costs are
    committed, and is released only after that, in a later write."""
    with transaction.atomic():
        relaxed_commit()
        settle(calls, due)
        Usage.objects.bulk_create([usage_row(call) for call in calls])
    leases.released(due)
    given_back(calls)
    if calls:
        count(calls)


def given_back(calls: list[Call]) -> None:
    for call in calls:
        if call.lease is not None:
            leases.give_back(call.lease, call.plan.estimate, call.cost()[0])
            call.lease = None


def usage_row(call: Call) -> Usage:
    cost, source = call.cost()
    prompt, completion = tokens(call.usage or {})
    served = call.served
    return Usage(
        key=call.key,
        endpoint=call.endpoint,
        model=call.model,
        provider=served.provider if served else "",
        offer_id=served.offer_id if served else None,
        upstream_model=served.upstream_id if served else "",
        stream=call.stream,
        attempts=call.attempts,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost_usd=cost,
        cost_source=source,
        ttfb_ms=round(call.ttfb * 1000, 2) if call.ttfb is not None else None,
        total_ms=round(call.total * 1000, 2),
        outcome=call.outcome,
        status_code=call.status,
        error=call.error,
    )


def settle(calls: list[Call], due: list[Lease]) -> None:
    """Each key's spend in one UPDATE: the requests' costs added, what they held themselves
    released, and the `due` leases."""
    by_key: dict[int, tuple[ApiKey, list[Call], list[Lease]]] = {}
    for call in calls:
        by_key.setdefault(call.key.pk, (call.key, [], []))[1].append(call)
    for lease in due:
        by_key.setdefault(lease.key.pk, (lease.key, [], []))[2].append(lease)
    for _, (key, same_key, ended) in sorted(by_key.items()):  # one lock order for every writer
        cost = sum((call.cost()[0] or ZERO for call in same_key), ZERO)
        held = [call for call in same_key if call.reserved]
        if not cost and not held and not ended:
            continue
        estimate = sum((call.plan.estimate for call in held if call.plan), ZERO)
        estimate += sum((lease.amount for lease in ended), ZERO)
        holds = len(held) + len(ended)
        key.settle(estimate, cost, reserved=bool(holds), requests=holds)


def count(calls: list[Call]) -> None:
    """Running totals in the shared store, by provider and outcome, for Prometheus."""
    fields: dict[str, float] = {}
    for call in calls:
        cost = call.cost()[0]
        prompt, completion = tokens(call.usage or {})
        provider = call.served.provider if call.served else "none"
        label = f"{call.endpoint}|{call.model}|{provider}|{call.outcome}"
        for name, value in (
            (f"requests|{label}", 1),
            (f"prompt_tokens|{label}", prompt or 0),
            (f"completion_tokens|{label}", completion or 0),
            (f"cost_usd|{label}", float(cost or 0)),
        ):
            fields[name] = fields.get(name, 0) + value
        if call.attempts:
            name = f"fallbacks|{call.endpoint}|{call.model}"
            fields[name] = fields.get(name, 0) + len(call.attempts)
    store().incr([(COUNTERS, fields, None)], defer=True)  # written behind, as metrics.record


class Recorder:
    """Writes ended requests in batches, from a thread of its own: a request's answer never
    waits for its record, and a hundred requests a second cost a few transactions, not a
    hundred. Nothing is dropped: `flush()` writes what is left (at exit, in tests)."""

    def __init__(self) -> None:
        self.calls: queue.SimpleQueue[Call] = queue.SimpleQueue()
        self.pending = threading.Event()
        self.writing = threading.Lock()  # one batch at a time, in order
        self.thread: threading.Thread | None = None

    def put(self, call: Call) -> None:
        self.calls.put(call)
        self.pending.set()
        if self.thread is None:
            self.thread = threading.Thread(target=self.run, name="broker-recorder", daemon=True)
            self.thread.start()

    def run(self) -> None:
        while True:
            self.pending.wait(leases.seconds_to_next())  # a request ended, or a lease is due
            time.sleep(settings.BROKER_RECORD_SECONDS)  # let the requests ending now join
            self.pending.clear()
            self.flush()
            connections.close_all()  # this thread's connection, back to the pool

    def flush(self) -> bool:
        """Write what is queued now; whether anything was written (here, or by the writer
        this waited for)."""
        waited = not self.writing.acquire(blocking=False)
        if waited:
            self.writing.acquire()
        try:
            calls = []
            with contextlib.suppress(queue.Empty):
                while True:
                    calls.append(self.calls.get_nowait())
            due = leases.due()
            if not calls and not due:
                return waited
            try:
                write(calls, due)
            except Exception:  # one bad record (its key deleted meanwhile…) spoils no other
                for call in calls:  # the leases stay due, for the next write
                    try:
                        write([call], [])
                    except Exception:
                        logger.exception("could not record a request's usage")
                        given_back([call])
            return True
        finally:
            self.writing.release()

    def forked(self) -> None:
        self.__init__()


RECORDER = Recorder()


@atexit.register
def _at_exit() -> None:
    """What is left to record, and this process's leases given up."""
    RECORDER.flush()
    leases.end()
    RECORDER.flush()


os.register_at_fork(after_in_child=RECORDER.forked)


def totals() -> dict[str, float]:
    return store().read([], [COUNTERS])[1].get(COUNTERS, {})

"""A process's share of a key's budget, so that most requests hold their cost in-process.

Every request of a key with a budget holds the most it can cost before the call, so that
concurrent requests, in every process, cannot overspend by more than one request. Held one
request at a time (`ApiKey.reserve`, one UPDATE of the key's row, its release another) that
round trip was most of the time the broker added to a request, and a key's concurrent
requests queued for its row's lock.

So a process reserves a lease: BROKER_BUDGET_LEASE_REQUESTS requests' worth of the key's
budget (at most 1/LEASE_SHARE of what is left), in the same statement as a request's hold, but
only where it fits: a lease never takes the one-more-request allowance. For
BROKER_CACHE_SECONDS the process's requests take their holds from it with no round trip. Each
gives back what it held once its cost has been written to the key's spend (by the recorder,
broker.accounting), less that cost: the requests of a lease cannot spend more than the lease.
An expired lease is released (the whole of it, one UPDATE, by the recorder) once its requests'
costs are written. Near the end of a budget, where a lease would be under two requests' worth,
or when BROKER_CACHE_SECONDS is 0, each request holds its own as before.

A process that dies holding a lease leaves it reserved until the month turns, as a request
in flight would leave its hold: the admin shows `reserved_usd`.
"""

from __future__ import annotations

import os
import threading
import time
from decimal import ROUND_DOWN, Decimal

from django.conf import settings

from broker import database
from broker.memo import Missing, only_in_memory
from broker.models import ApiKey

LEASE_SHARE = 8  # a lease is at most this fraction of what a key has left: 1/8
CENT_NANO = Decimal("1e-9")  # the spend's precision (ApiKey.reserved_usd)


class Lease:
    """`amount` of one key's budget, reserved by this process from `started` until `expires`
    (monotonic), sized for `requests` requests."""

    def __init__(
        self, key: ApiKey, amount: Decimal, started: float, expires: float, requests: int
    ) -> None:
        self.key, self.amount, self.requests = key, amount, requests
        self.started, self.expires = started, expires
        self.left = amount  # not taken by requests in flight, nor spent
        self.in_flight = 0
        self.renewing = False  # its successor is being reserved

    def take(self, estimate: Decimal, now: float) -> bool:
        if self.expires <= now or self.left < estimate:
            return False
        self.left -= estimate
        self.in_flight += 1
        return True

    def ageing(self, now: float) -> bool:
        """In its last quarter, of time or of budget: time to reserve the next one."""
        return self.expires - now < (self.expires - self.started) / 4 or self.left * 4 < self.amount


_leases: dict[int, Lease] = {}  # the live lease of each key
_ended: list[Lease] = []  # expired or replaced, still held in the database
_lock = threading.Lock()
_renewing = threading.Lock()  # one new lease at a time: the others wait for it, not race it


def hold(key: ApiKey, estimate: Decimal) -> Lease | None:
    """Hold `estimate` of the key's budget for a request from this process's lease, taking a
    new lease where the live one has no room; None where no lease is worth taking (the
    request then holds its own: ApiKey.reserve). On the event loop (memo.in_memory()), a
    lease in its last quarter has its successor reserved by a database thread while requests
    go on taking from it, and a request that would wait for a new lease raises Missing."""
    if (
        settings.BROKER_CACHE_SECONDS <= 0
        or settings.BROKER_BUDGET_LEASE_REQUESTS <= 0
        or key.monthly_budget_usd is None
    ):
        return None
    now = time.monotonic()
    with _lock:
        lease = _leases.get(key.pk)
        taken = lease is not None and lease.take(estimate, now)
        ahead = taken and only_in_memory() and not lease.renewing and lease.ageing(now)
        if ahead:
            lease.renewing = True
    if ahead:
        database.submit(_renew, key, estimate, lease)
    if taken:
        return lease
    if only_in_memory():
        raise Missing(key.pk)
    with _renewing:
        if (lease := _take(key, estimate)) is not None:  # renewed while this one waited
            return lease
        lease = _reserve(key, estimate)
        if lease is not None:
            lease.take(estimate, time.monotonic())
        return lease


def _renew(key: ApiKey, estimate: Decimal, ageing: Lease) -> None:
    with _renewing:
        if _leases.get(key.pk) is ageing:  # not replaced meanwhile
            _reserve(key, estimate)


def _reserve(key: ApiKey, estimate: Decimal) -> Lease | None:
    """A new lease (this process's live one from now on), or None where none is worth it."""
    now, seconds = time.monotonic(), settings.BROKER_CACHE_SECONDS
    requests = settings.BROKER_BUDGET_LEASE_REQUESTS
    with _lock:
        before = _leases.get(key.pk)
    if before is not None and before.left * 4 < before.amount and before.expires > now:
        # Used up before its time: the next one is sized for four times the requests.
        requests = max(requests, before.requests * 4)
    left = key.budget_left() or Decimal(0)
    amount = min(estimate * requests, left / LEASE_SHARE).quantize(CENT_NANO, ROUND_DOWN)
    if amount < 2 * estimate or not key.reserve(amount, lease=True):
        if before is not None:
            before.renewing = False
        return None
    lease = Lease(key, amount, now, now + seconds, requests)
    with _lock:
        if before is not None and _leases.get(key.pk) is before:
            _ended.append(before)
        _leases[key.pk] = lease
    return lease


def _take(key: ApiKey, estimate: Decimal) -> Lease | None:
    with _lock:
        lease = _leases.get(key.pk)
        if lease is not None and lease.take(estimate, time.monotonic()):
            return lease
    return None


def give_back(lease: Lease, estimate: Decimal, cost: Decimal | None) -> None:
    """A request of `lease` has ended and its cost is written: what it held and did not
    spend is the lease's again."""
    with _lock:
        lease.left += estimate - (cost or Decimal(0))
        lease.in_flight -= 1


def end(key: ApiKey | None = None) -> None:
    """Expire this process's leases now (of one key, or all): released once their requests
    have ended (a request refused for what others hold; the process stopping)."""
    with _lock:
        for pk in [key.pk] if key is not None else list(_leases):
            lease = _leases.pop(pk, None)
            if lease is not None:
                _ended.append(lease)


def due() -> list[Lease]:
    """The leases to release now: expired or replaced, none of their requests in flight."""
    now = time.monotonic()
    with _lock:
        for pk, lease in list(_leases.items()):
            if lease.expires <= now:
                _ended.append(_leases.pop(pk))
        return [lease for lease in _ended if lease.in_flight == 0]


def released(leases: list[Lease]) -> None:
    """`leases` are released in the database (their release committed)."""
    with _lock:
        _ended[:] = [lease for lease in _ended if lease not in leases]


def seconds_to_next() -> float | None:
    """Seconds until a live lease expires (None: no lease), for the recorder to wake then."""
    with _lock:
        if any(lease.in_flight == 0 for lease in _ended):
            return 0.0
        if not _leases:
            return None  # an ended lease's last request wakes the recorder as it ends
        return max(0.0, min(lease.expires for lease in _leases.values()) - time.monotonic())


def _forked() -> None:
    """A child process holds none of its parent's leases (it must not release them)."""
    global _lock, _renewing
    _lock, _renewing = threading.Lock(), threading.Lock()
    _leases.clear()
    _ended.clear()


os.register_at_fork(after_in_child=_forked)

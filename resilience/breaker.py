"""One circuit breaker per provider, shared by every process through resilience.store.

CLOSED → OPEN after PROVIDER_CIRCUIT_BREAKER_THRESHOLD consecutive failures; OPEN refuses
calls for PROVIDER_CIRCUIT_BREAKER_TIMEOUT seconds; then HALF_OPEN admits at most
PROVIDER_CIRCUIT_BREAKER_HALF_OPEN_MAX_CALLS trial calls in all processes together (the slot
is taken inside the atomic update, so two workers cannot both take the last one). All trials
succeed → CLOSED; any fails → OPEN again.

A CLOSED state read from the store is trusted in this process for
PROVIDER_CIRCUIT_BREAKER_LOCAL_TTL seconds (default 1), so the common call costs no round trip;
a breaker that opens elsewhere therefore stops this process's calls within that time. Every
failure is written through at once (the count is shared), and the process that writes a
state forgets what it had seen, so its own next call reads the store again.

Only 5xx, timeouts and connection errors are failures. A provider that answers at all (even
401, 404 or 429) is reachable, so for the breaker that call went through; the metrics still
count it as an error, which is what marks the provider unhealthy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from django.conf import settings

from resilience import metrics
from resilience.errors import UNREACHABLE, CircuitBreakerOpen
from resilience.memo import ProcessMemo
from resilience.store import store

CLOSED, OPEN, HALF_OPEN = "CLOSED", "OPEN", "HALF_OPEN"
# The outcome codes (resilience.errors) that count as failures.
FAILURES = UNREACHABLE
Outcome = Literal["success", "failure", "cancel"]  # cancel: admitted, but never sent


@dataclass(frozen=True)
class Config:
    threshold: int
    timeout: float
    half_open_max_calls: int

    @classmethod
    def from_settings(cls) -> Config:
        return cls(
            settings.PROVIDER_CIRCUIT_BREAKER_THRESHOLD,
            settings.PROVIDER_CIRCUIT_BREAKER_TIMEOUT,
            settings.PROVIDER_CIRCUIT_BREAKER_HALF_OPEN_MAX_CALLS,
        )


def initial() -> dict[str, Any]:
    return {
        "state": CLOSED,
        "failure_count": 0,
        "last_failure_time": None,
        "trip_count": 0,
        "opened_at": None,
        "trials": 0,  # trial calls admitted in this half-open round
        "trial_successes": 0,
    }


def admit(state: dict, now: float, cfg: Config) -> tuple[dict | None, bool]:
    """May a call go out now? Takes a half-open trial slot when it says yes."""
    s = initial() | state
    if s["state"] == CLOSED:
        return None, True
    if s["state"] == OPEN:
        if now - s["opened_at"] < cfg.timeout:
            return None, False
        s.update(state=HALF_OPEN, opened_at=now, trials=0, trial_successes=0)
    elif s["trials"] >= cfg.half_open_max_calls:
        if now - s["opened_at"] < cfg.timeout:
            return None, False
        # Every slot taken for a whole timeout: a trial's process died. Start a new round.
        s.update(opened_at=now, trials=0, trial_successes=0)
    s["trials"] += 1
    return s, True


def settle(state: dict, outcome: Outcome, now: float, cfg: Config) -> tuple[dict | None, str]:
    """Record how an admitted call went; returns the state it leaves the breaker in."""
    s = initial() | state
    if outcome == "cancel":
        if s["state"] != HALF_OPEN or not s["trials"]:
            return None, s["state"]
        s["trials"] -= 1
    elif outcome == "success":
        if s["state"] == HALF_OPEN:
            s["trial_successes"] += 1
            if s["trial_successes"] >= cfg.half_open_max_calls:
                s.update(state=CLOSED, failure_count=0, trials=0, trial_successes=0)
        elif s["state"] == CLOSED:
            s["failure_count"] = 0
    else:
        s["failure_count"] += 1
        s["last_failure_time"] = now
        if s["state"] == HALF_OPEN or (
            s["state"] == CLOSED and s["failure_count"] >= cfg.threshold
        ):
            s.update(state=OPEN, opened_at=now, trials=0, trial_successes=0)
            s["trip_count"] += 1
    return s, s["state"]


def key(slug: str) -> str:
    return f"breaker:{slug}"


# Per provider: (time.monotonic() when read, the CLOSED state read then).
_closed_seen = ProcessMemo()
forget = _closed_seen.forget


def closed_in_process(slug: str) -> dict | None:
    """The CLOSED state this process read within the local TTL, if any: `before_call`'s
    answer given with no round trip (None: ask `before_call`)."""
    hit = _closed_seen.get(slug)
    if hit and time.monotonic() - hit[0] < settings.PROVIDER_CIRCUIT_BREAKER_LOCAL_TTL:
        return hit[1]
    return None


def open_among(slugs: list[str]) -> set[str]:
    """The slugs whose breaker is OPEN: the CLOSED states this process read within the local
    TTL are taken as they are (a page costs no round trip while every breaker is closed), the
    others read in one round trip."""
    unsure = [slug for slug in slugs if closed_in_process(slug) is None]
    if not unsure:
        return set()
    states, _ = store().read([key(slug) for slug in unsure], [])
    found = set()
    for slug in unsure:
        seen = states.get(key(slug), {})
        if seen.get("state", CLOSED) == CLOSED:
            _closed_seen.set(slug, (time.monotonic(), seen))
        elif seen["state"] == OPEN:
            found.add(slug)
    return found


def before_call(slug: str) -> dict:
    """Raise CircuitBreakerOpen, without any network call, unless the breaker admits one.
    Returns the state it saw, for `after_call`."""
    seen = closed_in_process(slug)
    if seen is not None:
        return seen  # no read at all: a trip racing it is like a call already in flight
    cfg = Config.from_settings()
    now = time.time()
    seen = store().state(key(slug))
    if seen.get("state", CLOSED) == CLOSED:
        _closed_seen.set(slug, (time.monotonic(), seen))
        return seen  # one read
    if store().update(key(slug), lambda s: admit(s, now, cfg)):
        return {"state": HALF_OPEN}
    metrics.count(slug, "breaker_rejected")
    state = store().state(key(slug))
    wait = max(0.0, (state.get("opened_at") or now) + cfg.timeout - now)
    raise CircuitBreakerOpen(
        f"{slug}: circuit breaker {state.get('state', OPEN)}; "
        f"no call made (next trial in {wait:.0f}s)",
        retry_after=wait,
    )


def quiet(seen: dict) -> bool:
    """Whether a success after this state changes nothing (CLOSED, no failure counted)."""
    return seen.get("state", CLOSED) == CLOSED and not seen.get("failure_count")


def after_call(slug: str, outcome_class: str | None, seen: dict) -> None:
    """Settle an admitted call: its outcome class (None: it was never sent)."""
    if outcome_class is None:
        outcome: Outcome = "cancel"
    else:
        outcome = "failure" if outcome_class in FAILURES else "success"
    if outcome == "success" and quiet(seen):
        return  # nothing to change: the common case writes nothing
    cfg = Config.from_settings()
    now = time.time()
    forget(slug)
    store().update(key(slug), lambda s: settle(s, outcome, now, cfg))


def current(slug: str) -> dict[str, Any]:
    return initial() | store().state(key(slug))


def reset(slug: str) -> None:
    """Close the breaker now, keeping its history (successes, trips)."""

    def closed(s: dict) -> tuple[dict, None]:
        s = initial() | s
        s.update(state=CLOSED, failure_count=0, opened_at=None, trials=0, trial_successes=0)
        return s, None

    forget(slug)
    store().update(key(slug), closed)


def describe(state: dict, totals: dict[str, float]) -> dict[str, Any]:
    """The public view of a breaker (the provider guide's shape). Its success count, calls
    the provider answered, is derived from the metrics totals rather than stored twice."""
    s = initial() | state
    last = s["last_failure_time"]
    failed = sum(totals.get(f"class:{name}", 0) for name in FAILURES)
    return {
        "state": s["state"],
        "failure_count": s["failure_count"],
        "success_count": int(totals.get("calls", 0) - failed),
        "last_failure_time": datetime.fromtimestamp(last, UTC).isoformat() if last else None,
        "trip_count": s["trip_count"],
    }

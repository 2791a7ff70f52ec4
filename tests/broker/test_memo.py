"""The broker's second of memory (broker.memo): what a request reads without a round trip."""

from __future__ import annotations

import threading
import time

import pytest

from broker.memo import Memo, Missing, in_memory


def test_an_entry_near_its_expiry_is_loaded_again_by_one_request_while_others_read_it(settings):
    """In the last quarter of an entry's time the first request to read it loads it again;
    a request reading it meanwhile gets the entry it had, rather than loading it too."""
    settings.BROKER_CACHE_SECONDS = 0.4
    memo = Memo()
    assert memo.get("key", lambda: "first") == "first"
    assert (
        memo.get("key", lambda: pytest.fail("loaded again with most of its time left")) == "first"
    )
    time.sleep(0.32)
    meanwhile = []

    def load() -> str:
        meanwhile.append(memo.get("key", lambda: pytest.fail("loaded twice at once")))
        return "second"

    assert memo.get("key", load) == "second"
    assert meanwhile == ["first"]
    assert memo.get("key", lambda: "third") == "second"


def test_an_expired_entry_is_loaded_again(settings):
    settings.BROKER_CACHE_SECONDS = 0.05
    memo = Memo()
    memo.get("key", lambda: "first")
    time.sleep(0.06)
    assert memo.get("key", lambda: "second") == "second"


def test_on_the_event_loop_what_is_not_in_memory_is_missing(settings):
    """memo.in_memory(): the broker's request path tries memory first; an entry never loaded
    is Missing (the request then goes to a database thread), never loaded on the loop."""
    settings.BROKER_CACHE_SECONDS = 1
    memo = Memo()
    with in_memory(), pytest.raises(Missing):
        memo.get("key", lambda: pytest.fail("loaded on the event loop"))
    memo.get("key", lambda: "first")
    with in_memory():
        assert memo.get("key", lambda: pytest.fail("loaded again")) == "first"


def test_on_the_event_loop_an_entry_near_its_expiry_is_loaded_again_in_the_background(settings):
    """In its last quarter, an entry read on the event loop is given as it is, and loaded
    again by a database thread, which nobody waits for."""
    settings.BROKER_CACHE_SECONDS = 0.4
    memo = Memo()
    memo.get("key", lambda: "first")
    time.sleep(0.32)
    loading = threading.Event()

    def load() -> str:
        loading.wait(2)  # the request that found it has its answer before this ends
        return "second"

    with in_memory():
        assert memo.get("key", load) == "first"
    loading.set()
    deadline = time.monotonic() + 2
    while memo.get("key", lambda: "third") != "second" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert memo.get("key", lambda: "third") == "second"


def test_with_memory_off_nothing_remembered_before_is_served(settings):
    """BROKER_CACHE_SECONDS=0 (set while entries are remembered): every read loads, and on
    the event loop nothing is served from memory."""
    settings.BROKER_CACHE_SECONDS = 5
    memo = Memo()
    memo.get("key", lambda: "first")
    settings.BROKER_CACHE_SECONDS = 0
    assert memo.get("key", lambda: "second") == "second"
    with in_memory(), pytest.raises(Missing):
        memo.get("key", lambda: pytest.fail("loaded on the event loop"))

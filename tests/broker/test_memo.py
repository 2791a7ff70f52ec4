"""The broker's second of memory (broker.memo): what a request reads without a round trip."""

from __future__ import annotations

import time

import pytest

from broker.memo import Memo


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

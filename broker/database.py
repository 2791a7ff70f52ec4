"""The broker's database work, run for the event loop by a few long-lived threads.

Django's ORM is sync. `sync_to_async` inside a request runs in a thread made for that request,
whose connection is taken from the pool and given back every time (a checkout, a check query,
Django's set-up of a new connection object). These threads keep theirs while work keeps
coming, so a request's hop costs a queue put and a wake-up; a thread idle for IDLE_SECONDS
hands its connection back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, InterfaceError, connections

logger = logging.getLogger(__name__)
THREADS = 4  # each holds one pooled connection while busy (DATABASE_POOL_SIZE: 24)
IDLE_SECONDS = 2.0

_jobs: queue.SimpleQueue = queue.SimpleQueue()
_threads: list[threading.Thread] = []
_lock = threading.Lock()


async def run[T](fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in one of the threads; its result or its exception."""
    future = asyncio.get_running_loop().create_future()
    _start()
    _jobs.put((future, fn, args))
    return await future


def submit(fn: Callable[..., Any], *args: Any) -> None:
    """`fn(*args)` in one of the threads, awaited by nobody (what it raises is logged)."""
    _start()
    _jobs.put((None, fn, args))


def close() -> None:
    """Hand every thread's connection back now (a server stopping; the end of a test)."""
    if not _threads:
        return
    # Each thread takes one job, closes its connections and waits for the others: no thread
    # can take two, so every one of them closes.
    barrier = threading.Barrier(len(_threads) + 1)
    for _ in _threads:
        _jobs.put((None, _close_then_wait, (barrier,)))
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=10)


def _close_then_wait(barrier: threading.Barrier) -> None:
    connections.close_all()
    barrier.wait(timeout=10)


def _start() -> None:
    if len(_threads) >= THREADS:
        return
    with _lock:
        while len(_threads) < THREADS:
            thread = threading.Thread(target=_work, name="broker-db", daemon=True)
            thread.start()
            _threads.append(thread)


def _work() -> None:
    while True:
        try:
            future, fn, args = _jobs.get(timeout=IDLE_SECONDS)
        except queue.Empty:
            connections.close_all()
            continue
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the request awaiting it
            if isinstance(exc, DatabaseError | InterfaceError):
                connections.close_all()  # a broken connection is not kept for the next job
            if future is None:
                logger.exception("the broker's background database work failed")
            _resolve(future, exc, failed=True)
        else:
            _resolve(future, result, failed=False)


def _resolve(future: asyncio.Future | None, value: Any, *, failed: bool) -> None:
    if future is None:
        return

    def settle() -> None:
        if future.cancelled():
            return
        if failed:
            future.set_exception(value)
        else:
            future.set_result(value)

    future.get_loop().call_soon_threadsafe(settle)


def _forked() -> None:
    global _jobs
    _jobs, _threads[:] = queue.SimpleQueue(), []


os.register_at_fork(after_in_child=_forked)

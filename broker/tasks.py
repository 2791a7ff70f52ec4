from __future__ import annotations

from celery import shared_task

from broker import usage


@shared_task(ignore_result=True)
def roll_up_observations() -> None:
    """Each offer's observed latency and throughput, from the broker's usage records."""
    usage.roll_up()

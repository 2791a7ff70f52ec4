"""Bar-chart arithmetic for the server-rendered SVG bar charts of the apps above: the health
pages' 24 hours of checks and the broker's spend per day. One scale, so every bar chart measures
its bars the same way; it lives here, in the lowest layer both apps may import (tests/layers.py),
rather than twice in two apps that may not import each other."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal

Number = int | float | Decimal


def scale(values: Iterable[Number], height: float) -> Callable[[Number], float]:
    """What each value's bar measures on a chart `height` units tall, to a tenth of a unit:
    the largest of `values` fills it; a chart of zeros draws nothing (and divides by nothing)."""
    top = float(max(values, default=0)) or 1.0
    return lambda value: round(height * float(value) / top, 1)

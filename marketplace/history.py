"""Price history pictures: inline SVG sparklines drawn on the server from PriceChange rows."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from marketplace.formatting import FIELD_LABELS, usd
from providers.models import UNIT_PRICE, Offer, PriceChange

# The price a card draws: the first one stated of those its unit price is made from.
HEADLINE_FIELDS = tuple(f.name for f in UNIT_PRICE.get_source_expressions())
CARD_CHANGES = 60  # a card draws at most this many recent changes; the detail page draws all
WIDTH, HEIGHT, PAD = 120, 28, 3


@dataclass
class Sparkline:
    label: str
    changes: int
    low: Decimal
    high: Decimal
    since: datetime
    # The step line as (seconds after `since`, height in the box) pairs, the last step's
    # time None: it runs until `now`, where the line is drawn to.
    steps: list[tuple[float | None, float]]
    now: datetime

    @property
    def points(self) -> str:
        return points(self.since, self.steps, self.now)

    @property
    def caption(self) -> str:
        return f"{self.changes} change{'s' * (self.changes != 1)} since {self.since:%-d %b}"

    @property
    def title(self) -> str:
        return (
            f"{self.label}: {self.changes} change{'s' * (self.changes != 1)} since "
            f"{self.since:%Y-%m-%d}, between {usd(self.low)} and {usd(self.high)}"
        )


def points(since: datetime, steps: list[tuple[float | None, float]], now: datetime) -> str:
    """A sparkline's SVG polyline points in a WIDTH × HEIGHT box, `since` to `now` across it."""
    elapsed = (now - since).total_seconds()
    span = elapsed or 1.0

    def x(after: float | None) -> float:
        after = elapsed if after is None else after
        return PAD + (WIDTH - 2 * PAD) * min(max(after / span, 0), 1)

    drawn = [(x(0), steps[0][1])]
    for after, height in steps[1:]:
        drawn += [(x(after), drawn[-1][1]), (x(after), height)]
    return " ".join(f"{px:.1f},{py:.1f}" for px, py in drawn)


def lasting(
    since: datetime, steps: list[tuple[float | None, float]], now: datetime
) -> tuple[str, float, float]:
    """`points(since, steps, now)`, and the seconds after `since` between which they are the
    same text: a step's x only moves left as time passes, and its text (one decimal) stays
    while x is above its rounding cell's lower edge (with a margin far above float error).
    A card's line moves by a tenth of a pixel every few minutes, not on every request."""
    elapsed = (now - since).total_seconds()
    text = points(since, steps, now)
    until = math.inf
    for after, _ in steps[1:]:
        if after is None or after <= 0:  # at the right edge, or at the left: fixed
            continue
        if after >= elapsed:  # a change dated after now (clocks apart): drawn at the edge
            return text, elapsed, elapsed
        shown = float(f"{PAD + (WIDTH - 2 * PAD) * (after / elapsed):.1f}")
        lowest = shown - 0.05 + 1e-6
        if lowest > PAD:
            until = min(until, (WIDTH - 2 * PAD) * after / (lowest - PAD))
    return text, elapsed, until


def headline_field(offer: Offer) -> str | None:
    return next((name for name in HEADLINE_FIELDS if getattr(offer, name) is not None), None)


def recent_changes(offers: list[Offer]) -> dict[int, list[PriceChange]]:
    """The latest CARD_CHANGES headline-price changes of each offer, oldest first: one query."""
    ranked = (
        PriceChange.objects.filter(offer__in=[o.pk for o in offers], field__in=HEADLINE_FIELDS)
        .annotate(recent=Window(RowNumber(), partition_by=[F("offer_id")], order_by=F("at").desc()))
        .filter(recent__lte=CARD_CHANGES)
        .order_by("offer_id", "at", "id")
    )
    by_offer: dict[int, list[PriceChange]] = defaultdict(list)
    for change in ranked:
        by_offer[change.offer_id].append(change)
    return by_offer


def with_sparklines(offers: list[Offer]) -> list[Offer]:
    """Give each offer of a page its `sparkline` (or None), from one query."""
    changes, now = recent_changes(offers), timezone.now()
    for offer in offers:
        offer.sparkline = sparkline(offer, changes[offer.pk], now)
    return offers


def sparkline(
    offer: Offer,
    changes: list[PriceChange],
    now: datetime,
    field: str | None = None,
    *,
    complete: bool = False,
) -> Sparkline | None:
    """A step line of one price from first sight until now; from the oldest change given when
    `changes` may be only the latest CARD_CHANGES. None for a price that never moved: a flat
    line on every card says nothing the price itself does not."""
    field = field or headline_field(offer)
    current = getattr(offer, field) if field else None
    mine = [c for c in changes if c.field == field]
    if current is None or not mine:
        return None
    start = offer.first_seen if complete or len(mine) < CARD_CHANGES else mine[0].at
    opening = mine[0].old if mine and mine[0].old is not None else current
    steps = [(start, opening), *((c.at, c.new) for c in mine if c.new is not None), (now, current)]
    values = [v for _, v in steps]
    low, high = min(values), max(values)

    def y(value: Decimal) -> float:
        if high == low:
            return HEIGHT / 2
        return PAD + (HEIGHT - 2 * PAD) * float((high - value) / (high - low))

    heights = [(0.0, y(opening))]
    heights += [((at - start).total_seconds(), y(value)) for at, value in steps[1:-1]]
    heights.append((None, y(current)))
    return Sparkline(
        label=FIELD_LABELS[field],
        changes=len(mine),
        low=low,
        high=high,
        since=start,
        steps=heights,
        now=now,
    )

"""Figures from the usage records: the staff Usage page's (spend per day, per key, per model,
per provider), and each offer's observed latency and throughput (`roll_up`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Avg, Case, Count, F, FloatField, Q, Sum, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from broker.models import Outcome, Usage
from providers.bars import scale
from providers.models import Observation

DAYS = 30
ROLL_UP_SECONDS = 300  # how often beat rolls the usage records up into observations
CHART_WIDTH, CHART_HEIGHT = 600, 120


@dataclass
class Day:
    day: date
    cost: Decimal
    requests: int
    x: float = 0
    y: float = 0
    h: float = 0
    w: float = 0


def summary(days: int = DAYS) -> dict[str, Any]:
    since = timezone.now() - timedelta(days=days)
    recent = Usage.objects.filter(at__gte=since)
    totals = {
        "requests": Count("id"),
        "failed": Count("id", filter=~Q(outcome="ok")),
        "cost": Sum("cost_usd"),
        "prompt_tokens": Sum("prompt_tokens"),
        "completion_tokens": Sum("completion_tokens"),
    }
    return {
        "days": days,
        "chart": chart(recent, days),
        "chart_width": CHART_WIDTH,
        "chart_height": CHART_HEIGHT,
        "total": recent.aggregate(**totals),
        "tables": [
            ("Per key", grouped(recent, "key__name", totals), "key"),
            ("Per model", grouped(recent, "model", totals), "model"),
            ("Per provider", grouped(recent, "provider", totals), "provider"),
        ],
    }


def grouped(recent, column: str, totals: dict[str, Any]) -> list[dict[str, Any]]:
    rows = recent.values(column).annotate(**totals).order_by(F("cost").desc(nulls_last=True))
    return [row | {"name": row[column]} for row in rows]


def chart(recent, days: int) -> list[Day]:
    """One bar per day of the last `days`, scaled to the dearest day (an inline SVG)."""
    rows = {
        r["day"]: r
        for r in recent.annotate(day=TruncDate("at"))
        .values("day")
        .annotate(cost=Sum("cost_usd"), requests=Count("id"))
    }
    today = timezone.now().date()
    bars = []
    for i in range(days):
        day = today - timedelta(days=days - 1 - i)
        row = rows.get(day, {})
        bars.append(Day(day, row.get("cost") or Decimal(0), row.get("requests", 0)))
    length = scale([b.cost for b in bars], CHART_HEIGHT - 10)  # the dearest day fills it
    width = CHART_WIDTH / days
    for i, bar in enumerate(bars):
        bar.x, bar.w = round(i * width, 1), round(width * 0.8, 1)
        bar.h = length(bar.cost)
        bar.y = round(CHART_HEIGHT - bar.h, 1)
    return bars


def roll_up(now: datetime | None = None) -> int:
    """Each offer's observed latency and throughput over the last BROKER_OBSERVED_HOURS,
    from the usage records of the requests it served, written to providers.Observation (an
    offer that served none in the window loses its row); returns how many offers have one.

    One grouped query over the window's rows (Usage.at is indexed), run every
    ROLL_UP_SECONDS by beat, off the request path. Only answers served at the first attempt
    count: a fallback's time to first byte includes the attempts that failed. Latency is the
    mean time to the first byte of streamed answers (a whole answer's first byte comes when it
    is all generated); throughput is output tokens over generation time: after the first byte
    of a stream, the whole request otherwise."""
    now = now or timezone.now()
    since = now - timedelta(hours=settings.BROKER_OBSERVED_HOURS)
    generating = Case(
        When(stream=True, then=F("total_ms") - F("ttfb_ms")),
        default=F("total_ms"),
        output_field=FloatField(),
    )
    produced = Q(completion_tokens__gt=0)
    rows = (
        Usage.objects.filter(at__gte=since, at__lte=now, outcome=Outcome.OK, attempts=[])
        .exclude(offer=None)
        .exclude(ttfb_ms=None)
        .values("offer_id")
        .annotate(
            requests=Count("id"),
            streamed=Count("id", filter=Q(stream=True)),
            latency=Avg("ttfb_ms", filter=Q(stream=True)),
            tokens=Sum("completion_tokens", filter=produced),
            generating=Sum(generating, filter=produced),
        )
        .order_by()
    )
    observed = [
        Observation(
            offer_id=row["offer_id"],
            since=since,
            until=now,
            requests=row["requests"],
            streamed=row["streamed"],
            latency_ms=round(row["latency"], 1) if row["latency"] is not None else None,
            throughput_tps=per_second(row["tokens"], row["generating"]),
        )
        for row in rows
    ]
    with transaction.atomic():
        Observation.objects.bulk_create(
            observed,
            update_conflicts=True,
            unique_fields=["offer"],
            update_fields=[f.name for f in Observation._meta.concrete_fields if not f.primary_key],
        )
        Observation.objects.exclude(offer_id__in=[o.offer_id for o in observed]).delete()
    return len(observed)


def per_second(tokens: int | None, milliseconds: float | None) -> float | None:
    if not tokens or not milliseconds or milliseconds <= 0:
        return None
    return round(tokens / (milliseconds / 1000), 1)

"""The staff Usage page's figures: spend per day, per key, per model, per provider."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from broker.models import Usage

DAYS = 30
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
    top = max((b.cost for b in bars), default=Decimal(0)) or Decimal(1)
    width = CHART_WIDTH / days
    for i, bar in enumerate(bars):
        bar.x, bar.w = round(i * width, 1), round(width * 0.8, 1)
        bar.h = round(float(bar.cost / top) * (CHART_HEIGHT - 10), 1)
        bar.y = round(CHART_HEIGHT - bar.h, 1)
    return bars

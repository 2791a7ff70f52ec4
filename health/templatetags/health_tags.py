from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def percent(value: float | None) -> str:
    """0.934 → "93%"; unknown stays visibly unknown."""
    return "—" if value is None else f"{value:.0%}"


@register.filter
def ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ms"


@register.filter
def ago(moment: datetime | None) -> str:
    """Never timesince's "0 minutes ago", a bug to read on a card refreshed every 5 seconds:
    "just now", "42 seconds ago", "3 minutes ago"."""
    if moment is None:
        return "never"
    seconds = int((timezone.now() - moment).total_seconds())
    if seconds < 10:
        return "just now"
    if seconds < 60:
        return f"{seconds} seconds ago"
    return f"{timesince(moment, depth=1)} ago"

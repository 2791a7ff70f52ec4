from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def percent(value: float | None) -> str:
    """0.934 → "93%"; unknown stays visibly unknown."""
    return "—" if value is None else f"{value:.0%}"


@register.filter
def ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ms"

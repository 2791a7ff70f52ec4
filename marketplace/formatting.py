"""How the marketplace writes prices, counts and times: as people read them, never a made-up
zero. Plain functions, for the template filters (templatetags/market.py) and for the text the
marketplace builds in Python (price history, provider notices)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import get_language

FIELD_LABELS = {  # each price field's unit, in words
    "usd_per_1m_input": "USD per 1M input tokens",
    "usd_per_1m_output": "USD per 1M output tokens",
    "usd_per_image": "USD per image",
    "usd_per_gpu_hour": "USD per GPU-hour",
    "usd_per_gpu_hour_min": "USD per GPU-hour (market low)",
    "usd_per_gpu_hour_max": "USD per GPU-hour (market high)",
    "usd_per_instance_hour": "USD per instance-hour",
}


def usd(value: Decimal | float | None) -> str:
    """$0.02, $0.00015, $1,234.50: at least cents, every significant digit stored."""
    if value is None or value == "":
        return ""
    text = format(Decimal(str(value)).normalize(), "f")
    whole, _, frac = text.partition(".")
    return f"${int(whole):,}.{frac.ljust(2, '0')}"


def thousands(value: int | None) -> str:
    """12,524: humanize's intcomma, without its locale machinery (called ~100 times a page)."""
    return "" if value is None else f"{value:,}"


def ago(moment: datetime | None) -> str:
    """How long since a moment, for freshness lines: "just now", "3 minutes ago", "never".
    The words are kept per moment and minute of age (timesince counts whole minutes at
    most): a page says it of each provider several times, and timesince took ~30 µs."""
    if moment is None:
        return "never"
    now = timezone.now()
    since = now - moment
    if since < timedelta(minutes=1):
        return "just now"
    said = (moment, since // timedelta(minutes=1), get_language())
    found = _AGO.get(said)
    if found is None:
        if len(_AGO) >= 1000:  # moments come and go with polls: stay small
            _AGO.clear()
        found = _AGO[said] = f"{timesince(moment, now, depth=1)} ago"
    return found


_AGO: dict[tuple, str] = {}


def every(seconds: int) -> str:
    """A poll interval in words: "hour", "10 minutes", "90 seconds"."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return unit if count == 1 else f"{count} {unit}s"
    return f"{seconds} seconds"


def price_label(field: str) -> str:
    """A price field's unit in words: "USD per GPU-hour"."""
    return FIELD_LABELS.get(field, field)


def percent(value: float | None) -> str:
    """A 0–1 ratio as a percentage with one decimal place."""
    return "" if value is None else f"{value * 100:.1f}%"


# Decimal places shown for each float field on the offer page; a float not named here gets 2.
# Stored values keep every digit; this is only how they read.
FLOAT_PLACES = {
    "throughput_tps": 1,
    "latency_ms": 0,
    "vram_gb": 1,
    "vcpus": 1,
    "ram_gb": 1,
    "disk_gb": 1,
    "benchmark_score": 1,
    "gscore": 1,
}
RATIO_FIELDS = {"reliability"}  # 0–1, shown as a percentage


def number(value: float, places: int) -> str:
    """24.7, 1,234.5, 80: rounded to `places`, thousands separated, no trailing ".0"."""
    text = f"{value:,.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def shown(name: str, value, key: bool = False) -> str:
    """A stored value of the offer field `name` as the offer page shows it ("—": none)."""
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):  # before int: a bool is an int
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return usd(value)
    if name in RATIO_FIELDS:
        return percent(value)
    if isinstance(value, float):
        return number(value, FLOAT_PLACES.get(name, 2))
    if isinstance(value, int) and not key:
        return thousands(value)
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M} UTC"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)

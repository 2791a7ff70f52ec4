"""Server-rendered SVG charts for the comparison pages: coordinates are worked out here and
the templates draw them as plain <svg> (no charting library, no CDN, nothing to load).

- `history`: each offer's price as a step line over time, on one pair of axes.
- `distribution`: per provider, the spread of prices (min, median, max); a market range
  (Akash's bids) is drawn as the range it is, never as a point.
- `scatter`: G-Score against price, one dot per offer.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from marketplace.formatting import usd

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 12, 28
ROW = 28  # a distribution chart's row height
PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#db2777", "#0891b2", "#4b5563")


@dataclass
class Line:
    label: str
    points: str
    color: str


@dataclass
class Chart:
    width: int = WIDTH
    height: int = HEIGHT
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    dots: list[dict] = field(default_factory=list)
    title: str = ""

    @property
    def plot_bottom(self) -> int:
        return self.height - BOTTOM

    @property
    def plot_right(self) -> int:
        return self.width - RIGHT


def _scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0
    return lambda v: a + (b - a) * (float(v) - lo) / span


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if hi == lo:
        return [lo]
    return [lo + (hi - lo) * i / n for i in range(n + 1)]


def history(
    series: list[tuple[str, list[tuple[datetime, Decimal]]]], now: datetime
) -> Chart | None:
    """series: (label, [(when, price), …] oldest first); each drawn as a step line to now."""
    series = [(label, steps) for label, steps in series if steps]
    if not series:
        return None
    start = min(steps[0][0] for _, steps in series)
    prices = [float(p) for _, steps in series for _, p in steps]
    low, high = min(prices), max(prices)
    if low == high:
        low, high = low * 0.9, high * 1.1 or 1.0
    x = _scale(start.timestamp(), now.timestamp(), LEFT, WIDTH - RIGHT)
    y = _scale(low, high, HEIGHT - BOTTOM, TOP)
    chart = Chart(title="Price history")
    for i, (label, steps) in enumerate(series):
        points = [(x(steps[0][0].timestamp()), y(steps[0][1]))]
        for when, price in [*steps[1:], (now, steps[-1][1])]:
            points += [(x(when.timestamp()), points[-1][1]), (x(when.timestamp()), y(price))]
        chart.lines.append(
            Line(label, " ".join(f"{px:.1f},{py:.1f}" for px, py in points), PALETTE[i % 8])
        )
    chart.y_ticks = [(y(v), usd(Decimal(str(round(v, 6))))) for v in _ticks(low, high)]
    chart.x_ticks = [
        (x(t), datetime.fromtimestamp(t, tz=now.tzinfo).strftime("%-d %b"))
        for t in _ticks(start.timestamp(), now.timestamp(), 3)
    ]
    return chart


def distribution(
    groups: list[tuple[str, list[Decimal], list[tuple[Decimal, Decimal]]]],
) -> Chart | None:
    """groups: (provider, point prices, market ranges). Each row: a line from the lowest to the
    highest price, a tick at the median of the point prices, and each range as a bar."""
    groups = [g for g in groups if g[1] or g[2]]
    if not groups:
        return None
    values = [
        float(v) for _, points, ranges in groups for v in [*points, *(e for r in ranges for e in r)]
    ]
    low, high = min(values), max(values)
    height = TOP + BOTTOM + ROW * len(groups)
    x = _scale(min(low, 0.0), high * 1.05 or 1.0, LEFT + 40, WIDTH - RIGHT)
    chart = Chart(height=height, title="Price per GPU-hour by provider")
    for i, (label, points, ranges) in enumerate(groups):
        every = [*points, *(e for r in ranges for e in r)]
        middle = TOP + ROW * i + ROW / 2
        row = {
            "label": label,
            "y": middle,
            "x_min": x(min(every)),
            "x_max": x(max(every)),
            "color": PALETTE[i % 8],
            "median": x(statistics.median(points)) if points else None,
            "ranges": [(x(lo), x(hi) - x(lo)) for lo, hi in ranges],
            "title": _spread(points, ranges),
        }
        chart.rows.append(row)
    chart.x_ticks = [
        (x(v), usd(Decimal(str(round(v, 4))))) for v in _ticks(min(low, 0.0), high * 1.05 or 1.0)
    ]
    return chart


def _spread(points: list[Decimal], ranges: list[tuple[Decimal, Decimal]]) -> str:
    parts = []
    if points:
        parts.append(
            f"{len(points)} priced: min {usd(min(points))}, median "
            f"{usd(statistics.median(points))}, max {usd(max(points))}"
        )
    parts += [f"market range {usd(lo)}–{usd(hi)}" for lo, hi in ranges]
    return "; ".join(parts)


def scatter(points: list[tuple[str, Decimal, float]]) -> Chart | None:
    """points: (label, price per GPU-hour, G-Score 0–100)."""
    if not points:
        return None
    prices = [float(p) for _, p, _ in points]
    x = _scale(0.0, max(prices) * 1.05 or 1.0, LEFT, WIDTH - RIGHT)
    y = _scale(0.0, 100.0, HEIGHT - BOTTOM, TOP)
    providers = sorted({label for label, _, _ in points})
    chart = Chart(title="G-Score against price")
    for label, price, score in points:
        color = PALETTE[providers.index(label) % 8]
        chart.dots.append(
            {
                "x": x(price),
                "y": y(score),
                "color": color,
                "title": f"{label}: {usd(price)}/GPU-h, G-Score {score:.0f}",
            }
        )
    chart.x_ticks = [
        (x(v), usd(Decimal(str(round(v, 4))))) for v in _ticks(0.0, max(prices) * 1.05)
    ]
    chart.y_ticks = [(y(v), f"{v:.0f}") for v in (0, 25, 50, 75, 100)]
    chart.lines = [Line(label, "", PALETTE[i % 8]) for i, label in enumerate(providers)]  # legend
    return chart

"""G-Score: how much GPU compute a dollar buys, 0–100 across the GPU offers on sale now.

    tflops  = the GPU's spec-sheet dense BF16 tensor TFLOPS (dense FP16 for GPUs without BF16,
              such as V100 and T4), from GpuModel: the same figure for every provider
    value   = tflops / usd_per_gpu_hour × penalty
    penalty = max(0, 1 − 3 × (1 − reliability)); 1 where the provider reports no reliability
    gscore  = min(100, 100 × value / reference), reference = the 99th-percentile value among
              available GPU offers (so one mispriced outlier cannot squash every other score)

Offers with no catalogued GPU, no spec figure or no USD price per GPU-hour (Render's native
unit) get no score rather than a guessed one. A provider's own benchmark (Vast's `dlperf`) is
kept in Offer.benchmark_score and not mixed in, because only one provider reports it.

Stored: each offer's value (`Offer.gscore_value`, written by the poll with the offer, empty
once it is no longer on sale: providers.pipeline.score) and the reference
(`Provider.gscore_reference`, the same on every provider, recomputed after each GPU poll by
providers.pipeline.refresh_gscore_reference). The 0–100 score is worked out when shown
(`Offer.gscore`), so a price move that shifts the reference rewrites no other offer. Sorting
by value is sorting by score; offers that show the same score (those capped at 100, or equal
once rounded) come in order of value. This module is the arithmetic alone.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

EXPLANATION = (
    "G-Score: GPU compute per dollar. The GPU's spec-sheet BF16 TFLOPS (FP16 where it has no "
    "BF16) divided by the price per GPU-hour, then cut by unreliability: each point of "
    "reliability under 100% costs 3% (90% reliable keeps 70%). Scaled so the best offers on "
    "sale now score 100. Blank when the GPU model or a USD price is unknown."
)
RELIABILITY_WEIGHT = 3
REFERENCE_PERCENTILE = 0.99


def scale(values: list[float]) -> float | None:
    """The reference value that scores 100: the nearest-rank 99th percentile."""
    if not values:
        return None
    ranked = sorted(values)
    return ranked[max(0, math.ceil(REFERENCE_PERCENTILE * len(ranked)) - 1)]


def value(tflops: float | None, price: Decimal | None, reliability: float | None) -> float | None:
    """tflops / usd_per_gpu_hour × penalty for one offer: None where any input is unknown."""
    if tflops is None or price is None or price <= 0:
        return None
    unreliability = 1.0 - (1.0 if reliability is None else reliability)
    return tflops / float(price) * max(0.0, 1.0 - RELIABILITY_WEIGHT * unreliability)


def score(worth: float, reference: float) -> float:
    """min(100, 100 × value / reference) to 0.1, halves rounded away from zero (read at 15
    significant digits, so 87.45 stays 87.45 and rounds up, as PostgreSQL's ROUND did)."""
    scaled = min(100.0, 100 * worth / reference)
    return float(Decimal(f"{scaled:.15g}").quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))

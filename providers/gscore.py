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
once it is no longer on sale) and the reference (`Provider.gscore_reference`, the same on every
provider, recomputed by `refresh()` after each GPU poll). The 0–100 score is worked out when
shown (`Offer.gscore`), so a price move that shifts the reference rewrites no other offer: at
100,000 offers, rewriting every stored score after each GPU poll took ~6 s of a re-poll.
Sorting by value is sorting by score; offers that show the same score (those capped at 100,
or equal once rounded) come in order of value.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from django.db.models.functions import Coalesce

from providers.models import GpuModel, Kind, Offer, Provider

if TYPE_CHECKING:
    from providers.adapters.base import OfferIn

EXPLANATION = (
    "G-Score: GPU compute per dollar. The GPU's spec-sheet BF16 TFLOPS (FP16 where it has no "
    "BF16) divided by the price per GPU-hour, then cut by unreliability: each point of "
    "reliability under 100% costs 3% (90% reliable keeps 70%). Scaled so the best offers on "
    "sale now score 100. Blank when the GPU model or a USD price is unknown."
)
RELIABILITY_WEIGHT = 3
REFERENCE_PERCENTILE = 0.99


def values[K: Hashable](offers: Mapping[K, OfferIn]) -> dict[K, float | None]:
    """Each offer's value, keyed as `offers` (None where it has none): one query for the
    GPUs' spec figures, none when no offer is a GPU on sale."""
    gpus = [o for o in offers.values() if o.available and o.kind == Kind.GPU and o.gpu_id]
    if not gpus:
        return dict.fromkeys(offers)
    figures = dict(
        GpuModel.objects.filter(pk__in={o.gpu_id for o in gpus})
        .annotate(tflops=Coalesce("bf16_tflops", "fp16_tflops"))
        .values_list("pk", "tflops")
    )
    return {
        key: value(figures.get(o.gpu_id), o.usd_per_gpu_hour, o.reliability)
        if o.available and o.kind == Kind.GPU
        else None
        for key, o in offers.items()
    }


def scale(values: list[float]) -> float | None:
    """The reference value that scores 100: the nearest-rank 99th percentile."""
    if not values:
        return None
    ranked = sorted(values)
    return ranked[max(0, math.ceil(REFERENCE_PERCENTILE * len(ranked)) - 1)]


def refresh() -> float | None:
    """Recompute the reference from the values of the offers on sale and keep it on every
    provider (two queries; no offer is written). Returns it."""
    on_sale = Offer.objects.filter(available=True, gscore_value__isnull=False)
    reference = scale(list(on_sale.values_list("gscore_value", flat=True)))
    Provider.objects.exclude(gscore_reference=reference).update(gscore_reference=reference)
    return reference


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

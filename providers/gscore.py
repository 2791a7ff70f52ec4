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
"""

from __future__ import annotations

import math

from django.db.models import Q

from providers.models import Kind, Offer

EXPLANATION = (
    "G-Score: GPU compute per dollar. The GPU's spec-sheet BF16 TFLOPS (FP16 where it has no "
    "BF16) divided by the price per GPU-hour, then cut by unreliability: each point of "
    "reliability under 100% costs 3% (90% reliable keeps 70%). Scaled so the best offers on "
    "sale now score 100. Blank when the GPU model or a USD price is unknown."
)
RELIABILITY_WEIGHT = 3
REFERENCE_PERCENTILE = 0.99
BATCH_SIZE = 1000


def value(
    tflops: float | None, usd_per_gpu_hour: float | None, reliability: float | None
) -> float | None:
    """TFLOPS per $/GPU-hour after the reliability penalty; None when it cannot be known."""
    if not tflops or not usd_per_gpu_hour or usd_per_gpu_hour <= 0:
        return None
    penalty = 1.0 if reliability is None else max(0.0, 1 - RELIABILITY_WEIGHT * (1 - reliability))
    return tflops / usd_per_gpu_hour * penalty


def scale(values: list[float]) -> float | None:
    """The reference value that scores 100: the nearest-rank 99th percentile."""
    if not values:
        return None
    ranked = sorted(values)
    return ranked[max(0, math.ceil(REFERENCE_PERCENTILE * len(ranked)) - 1)]


def score(raw: float | None, reference: float | None) -> float | None:
    if raw is None or not reference:
        return None
    return round(min(100.0, 100 * raw / reference), 1)


def refresh() -> int:
    """Recompute every current GPU offer's G-Score; returns how many offers have one."""
    rows = list(
        Offer.objects.filter(kind=Kind.GPU)
        .filter(Q(available=True) | Q(gscore__isnull=False))
        .values_list(
            "id",
            "available",
            "usd_per_gpu_hour",
            "reliability",
            "gpu__bf16_tflops",
            "gpu__fp16_tflops",
            "gscore",
        )
    )
    raw = {
        pk: value(bf16 or fp16, float(price) if price is not None else None, reliability)
        for pk, available, price, reliability, bf16, fp16, _ in rows
        if available
    }
    reference = scale([v for v in raw.values() if v is not None])
    changed = []
    for pk, *_, old in rows:
        new = score(raw.get(pk), reference)
        if new != old:
            changed.append(Offer(pk=pk, gscore=new))
    Offer.objects.bulk_update(changed, ["gscore"], batch_size=BATCH_SIZE)
    return sum(v is not None for v in raw.values())

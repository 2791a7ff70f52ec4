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

A poll's own offers get their scores before they are written (`prescore`, the same arithmetic
in Python), so `refresh()` after it only rescales other providers' offers: a first poll of
45,000 Vast offers is not written a second time just to score it.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from django.db.models import F, FloatField, OuterRef, QuerySet, Subquery, Value
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Cast, Coalesce, Greatest, Least, NullIf, Round

from providers.models import GpuModel, Kind, Offer

if TYPE_CHECKING:
    from providers.adapters.base import OfferIn
    from providers.models import Provider

EXPLANATION = (
    "G-Score: GPU compute per dollar. The GPU's spec-sheet BF16 TFLOPS (FP16 where it has no "
    "BF16) divided by the price per GPU-hour, then cut by unreliability: each point of "
    "reliability under 100% costs 3% (90% reliable keeps 70%). Scaled so the best offers on "
    "sale now score 100. Blank when the GPU model or a USD price is unknown."
)
RELIABILITY_WEIGHT = 3
REFERENCE_PERCENTILE = 0.99


def value_expression() -> CombinedExpression:
    """tflops / usd_per_gpu_hour × penalty, in SQL: NULL where any input is unknown."""
    tflops = Subquery(
        GpuModel.objects.filter(pk=OuterRef("gpu_id"))
        .annotate(tflops=Coalesce("bf16_tflops", "fp16_tflops"))
        .values("tflops")[:1],
        output_field=FloatField(),
    )
    unreliability = Value(1.0) - Coalesce(F("reliability"), Value(1.0))
    penalty = Greatest(Value(0.0), Value(1.0) - RELIABILITY_WEIGHT * unreliability)
    price = NullIf(Cast("usd_per_gpu_hour", FloatField()), Value(0.0))  # never ÷ 0
    return tflops / price * penalty


def scored() -> QuerySet[Offer]:
    """The offers a G-Score is given to: GPU offers on sale now with a USD per-GPU-hour."""
    return Offer.objects.filter(
        kind=Kind.GPU, available=True, gpu__isnull=False, usd_per_gpu_hour__gt=0
    )


def scale(values: list[float]) -> float | None:
    """The reference value that scores 100: the nearest-rank 99th percentile."""
    if not values:
        return None
    ranked = sorted(values)
    return ranked[max(0, math.ceil(REFERENCE_PERCENTILE * len(ranked)) - 1)]


def refresh() -> float | None:
    """Recompute every current GPU offer's G-Score in three queries; returns the reference."""
    values = scored().annotate(value=value_expression()).filter(value__isnull=False)
    reference = scale(list(values.values_list("value", flat=True)))
    if reference:
        score = Round(Least(Value(100.0), 100 * value_expression() / reference), 1)
        scored().exclude(gscore=score).update(gscore=score)  # only rows whose score moved
    stale = Offer.objects.filter(kind=Kind.GPU, gscore__isnull=False)
    if reference:
        stale = stale.exclude(pk__in=scored().values("pk"))
    stale.update(gscore=None)
    return reference


def prescore(provider: Provider, offers: Mapping[Hashable, OfferIn]) -> dict[Hashable, float]:
    """The scores `refresh()` will give a poll's offers once written (keyed as `offers`), on
    the scale of these offers and every other provider's current ones: the same inputs and
    float operations as `value_expression()`, the same rounding as PostgreSQL's."""
    figures = dict(
        GpuModel.objects.annotate(tflops=Coalesce("bf16_tflops", "fp16_tflops")).values_list(
            "pk", "tflops"
        )
    )
    mine = {
        key: value(figures.get(offer.gpu_id), offer.usd_per_gpu_hour, offer.reliability)
        for key, offer in offers.items()
        if offer.available and offer.kind == Kind.GPU
    }
    others = scored().exclude(provider=provider).annotate(value=value_expression())
    values = [*others.filter(value__isnull=False).values_list("value", flat=True)]
    reference = scale(values + [v for v in mine.values() if v is not None])
    return {key: score(v, reference) for key, v in mine.items() if v is not None and reference}


def value(tflops: float | None, price: Decimal | None, reliability: float | None) -> float | None:
    """`value_expression()` for one offer, operation for operation."""
    if tflops is None or price is None or price <= 0:
        return None
    unreliability = 1.0 - (1.0 if reliability is None else reliability)
    return tflops / float(price) * max(0.0, 1.0 - RELIABILITY_WEIGHT * unreliability)


def score(worth: float, reference: float) -> float:
    """Round(Least(100, 100 × value / reference), 1) as PostgreSQL computes it: the float cast
    to numeric at 15 significant digits, then rounded half away from zero."""
    scaled = min(100.0, 100 * worth / reference)
    return float(Decimal(f"{scaled:.15g}").quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))
